/** A tiny inline SVG trend line; null values leave gaps. */
import { cn } from "@/lib/utils";

export function Sparkline({
  values,
  className,
  label,
}: {
  values: readonly (number | null)[];
  className?: string;
  label: string;
}) {
  const numeric = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const width = 100;
  const height = 28;
  if (numeric.length < 2) {
    return (
      <svg
        viewBox={`0 0 ${width} ${height}`}
        preserveAspectRatio="none"
        className={cn("h-7 w-full", className)}
        role="img"
        aria-label={`${label}: no trend yet`}
      >
        <line
          x1="0"
          x2={width}
          y1={height - 2}
          y2={height - 2}
          stroke="currentColor"
          strokeOpacity="0.25"
          strokeDasharray="3 3"
          vectorEffect="non-scaling-stroke"
        />
      </svg>
    );
  }
  const min = Math.min(...numeric);
  const max = Math.max(...numeric);
  const span = max - min || 1;
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const paths: string[] = [];
  let current = "";
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      if (current) paths.push(current);
      current = "";
      return;
    }
    const x = (i * step).toFixed(2);
    const y = (height - 2 - ((v - min) / span) * (height - 4)).toFixed(2);
    current += `${current ? "L" : "M"}${x},${y}`;
  });
  if (current) paths.push(current);
  return (
    <svg
      viewBox={`0 0 ${width} ${height}`}
      preserveAspectRatio="none"
      className={cn("h-7 w-full text-primary", className)}
      role="img"
      aria-label={`${label}: trend over the last hour`}
    >
      {paths.map((d, i) => (
        <path
          key={i}
          d={d}
          fill="none"
          stroke="currentColor"
          strokeWidth="1.5"
          strokeLinejoin="round"
          vectorEffect="non-scaling-stroke"
        />
      ))}
    </svg>
  );
}
