/**
 * RepositoryIssues: in the GitHub tile, the polled repositories that need attention: an
 * unhealthy one with its error and fix (404, 403, ...), a renamed one as "acme/old → acme/new".
 * How many are unhealthy is on the tile's badge.
 */
import { CodeText } from "@/components/CodeText";
import type { GitHubHealth } from "@/lib/api/types";
import { repositoryIssues } from "@/lib/health";
import { cn } from "@/lib/utils";

export function RepositoryIssues({ github }: { github: GitHubHealth | undefined }) {
  const issues = repositoryIssues(github);
  if (issues.length === 0) return null;
  return (
    <ul
      className="flex flex-col gap-0.5"
      aria-label="Repositories needing attention"
      data-testid="github-repositories"
    >
      {issues.map((repo) => (
        <li
          key={repo.name}
          className={cn("break-words", repo.healthy ? "text-amber-400" : "text-red-400")}
          data-testid="github-repository"
          data-repository={repo.name}
          data-healthy={repo.healthy ? "true" : "false"}
        >
          <span className="font-mono text-foreground">
            {repo.moved_to ? `${repo.name} → ${repo.moved_to}` : repo.name}
          </span>
          {repo.error ? (
            <>
              : <CodeText text={repo.error} />
            </>
          ) : repo.moved_to ? (
            <span>
              : renamed; fix: use the new name in <CodeText text="`[github] repositories`" />
            </span>
          ) : null}
        </li>
      ))}
    </ul>
  );
}
