import Link from "next/link";

export default function NotFound() {
  return (
    <main className="flex min-h-dvh flex-col items-center justify-center gap-2 p-6 text-center">
      <h1 className="text-lg font-semibold">Page not found</h1>
      <p className="text-sm text-muted-foreground">The dashboard has a single page.</p>
      <Link href="/" className="text-sm text-primary underline-offset-2 hover:underline">
        Back to the overview
      </Link>
    </main>
  );
}
