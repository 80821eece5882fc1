import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { cloneElement, type ReactElement } from "react";
import { afterEach, vi } from "vitest";
import { resetTokenState } from "@/lib/api/token";

// Tests wait for conditions (findBy*, waitFor), never for a fixed time; on a loaded 2-core
// machine a render can take longer than the library's 1 s default, so wait up to 5 s.
configure({ asyncUtilTimeout: 5000 });

// jsdom has no layout: give charts a fixed size instead of a measured one.
vi.mock("recharts", async (importOriginal) => {
  const recharts = await importOriginal<typeof import("recharts")>();
  return {
    ...recharts,
    ResponsiveContainer: ({
      children,
    }: {
      children: ReactElement<{ width?: number; height?: number }>;
    }) => (
      <div style={{ width: 320, height: 150 }}>
        {cloneElement(children, { width: 320, height: 150 })}
      </div>
    ),
  };
});

class ResizeObserverStub {
  observe() {}
  unobserve() {}
  disconnect() {}
}

if (!("ResizeObserver" in globalThis)) {
  vi.stubGlobal("ResizeObserver", ResizeObserverStub);
}

// Radix uses these; jsdom lacks them.
if (!Element.prototype.hasPointerCapture) {
  Element.prototype.hasPointerCapture = () => false;
  Element.prototype.releasePointerCapture = () => {};
  Element.prototype.scrollIntoView = () => {};
}

afterEach(() => {
  cleanup();
  resetTokenState();
  vi.unstubAllGlobals();
  vi.stubGlobal("ResizeObserver", ResizeObserverStub);
  vi.useRealTimers();
});
