/**
 * HealthTile: the card shell shared by the health row of the system overview (GitHub, rate-limit
 * budget, reconcile loop): an icon and title, a badge on the right and a scrolling body.
 */
import type { ReactNode } from "react";
import { SIZES } from "@/components/skeletons";
import { Card } from "@/components/ui/card";
import { cn } from "@/lib/utils";

export function HealthTile({
  title,
  icon,
  badge,
  children,
  testId,
}: {
  title: string;
  icon: ReactNode;
  badge: ReactNode;
  children: ReactNode;
  testId: string;
}) {
  return (
    <Card className={cn(SIZES.healthTile, "gap-1.5 overflow-hidden p-3")} data-testid={testId}>
      <div className="flex items-center justify-between gap-2">
        <div className="flex items-center gap-1.5 text-xs text-muted-foreground">
          {icon}
          <h3 className="font-medium">{title}</h3>
        </div>
        {badge}
      </div>
      <div className="flex min-h-0 flex-col gap-0.5 overflow-y-auto text-xs text-muted-foreground">
        {children}
      </div>
    </Card>
  );
}
