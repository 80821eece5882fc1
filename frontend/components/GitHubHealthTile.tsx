"use client";
/**
 * GitHubHealthTile: whether GitHub is reachable, when it last answered, which rate limit pauses
 * it and until when, the repositories that are unhealthy or renamed, and the last error.
 */
import { GitBranch } from "lucide-react";
import type { ReactNode } from "react";
import { RepositoryIssues } from "@/components/GitHubRepositories";
import { HealthTile } from "@/components/HealthTile";
import { Badge } from "@/components/ui/badge";
import { useNow } from "@/hooks/useNow";
import { useStatusSelector } from "@/hooks/useStatusStream";
import { formatAgo, formatClock, formatCountdown } from "@/lib/format";
import { rateLimitLabel, repositoryIssues, unhealthyRepositoryCount } from "@/lib/health";

export function GitHubHealthTile() {
  const github = useStatusSelector((s) => s.github);
  const now = useNow(1_000);
  const unhealthy = unhealthyRepositoryCount(github);
  let badge: ReactNode = <Badge variant="outline">no data</Badge>;
  if (github?.reachable === true && unhealthy > 0) {
    badge = (
      <Badge
        variant="warning"
        title={`reachable; ${unhealthy} of ${github.repositories?.length ?? 0} repositories unhealthy`}
      >
        {unhealthy} {unhealthy === 1 ? "repo" : "repos"} unhealthy
      </Badge>
    );
  } else if (github?.reachable === true) badge = <Badge variant="success">reachable</Badge>;
  else if (github?.reachable === false) badge = <Badge variant="danger">unreachable</Badge>;
  else if (github) badge = <Badge variant="outline">not contacted yet</Badge>;
  const repoIssues = repositoryIssues(github).length > 0;
  return (
    <HealthTile
      title="GitHub"
      icon={<GitBranch className="size-3.5" />}
      badge={badge}
      testId="github-health"
    >
      <span>
        Last OK:{" "}
        <span className="text-foreground">
          {github?.last_ok_at ? formatAgo(github.last_ok_at * 1000, now) : "never"}
        </span>
        {github?.poll_interval_seconds ? (
          <span data-testid="github-poll-interval" title="paced to GitHub's rate-limit budgets">
            {" "}
            · polls every {Math.round(github.poll_interval_seconds)}s
          </span>
        ) : null}
      </span>
      {github?.blocked_until && github.blocked_until * 1000 > now ? (
        <span className="text-amber-400" data-testid="github-blocked">
          Paused by {rateLimitLabel(github.rate_limit_kind)} until{" "}
          {formatClock(github.blocked_until)} ({formatCountdown(github.blocked_until, now)})
        </span>
      ) : null}
      <RepositoryIssues github={github} />
      {github?.last_error ? (
        <span className="truncate text-red-400" title={github.last_error}>
          {github.last_error}
        </span>
      ) : repoIssues ? null : (
        <span>No errors</span>
      )}
    </HealthTile>
  );
}
