import path from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [react()],
  resolve: { alias: { "@": path.resolve(import.meta.dirname, ".") } },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./test/setup.tsx"],
    include: ["test/**/*.test.{ts,tsx}"],
    css: false,
    restoreMocks: true,
    testTimeout: 20000, // the condition waits above, on a loaded machine
  },
});
