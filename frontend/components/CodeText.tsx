/** A server message with `backticked` commands and settings shown as inline code. */
export function CodeText({ text }: { text: string }) {
  const parts = text.split("`");
  // An unmatched backtick is shown as is.
  if (parts.length % 2 === 0) return <>{text}</>;
  return (
    <>
      {parts.map((part, i) =>
        i % 2 === 1 ? (
          <code key={i} className="rounded bg-muted px-1 font-mono text-[0.95em] text-foreground">
            {part}
          </code>
        ) : (
          part
        ),
      )}
    </>
  );
}
