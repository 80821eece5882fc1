import type { NextConfig } from "next";

// Static export: the backend serves `out/` at `/` on the same port as the API.
const nextConfig: NextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
};

export default nextConfig;
