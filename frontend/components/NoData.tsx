"use client";
import { Tooltip, TooltipContent, TooltipTrigger } from "@/components/ui/tooltip";
import { NO_DATA } from "@/lib/format";

/** The "—" shown for a null metric, with a "no data yet" tooltip (keyboard focusable). */
export function NoData({ hint = "no data yet" }: { hint?: string }) {
  return (
    <Tooltip>
      <TooltipTrigger asChild>
        <button
          type="button"
          aria-label={hint}
          title={hint}
          className="cursor-help rounded-sm outline-none focus-visible:ring-2 focus-visible:ring-ring"
        >
          {NO_DATA}
        </button>
      </TooltipTrigger>
      <TooltipContent>{hint}</TooltipContent>
    </Tooltip>
  );
}
