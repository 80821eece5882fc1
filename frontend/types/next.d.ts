// Committed stand-in for the generated (git-ignored) next-env.d.ts, so `tsc --noEmit` works on a
// fresh clone before any `next build` or `next dev`.
/// <reference types="next" />
/// <reference types="next/image-types/global" />
