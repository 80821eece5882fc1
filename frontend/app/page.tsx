"use client";
/**
 * The overview page: composes the widgets. Each widget owns its data: live figures, VMs and jobs
 * come from the status stream (`StatusStreamProvider` in `app/providers.tsx`, read with
 * `useStatusSelector`), and a detail view (one VM, one job, the history) fetches its own resource
 * with TanStack Query. The page itself only keeps the selection in the query string.
 */
import { Hammer } from "lucide-react";
import type { ReactNode } from "react";
import { ApiConnectionError } from "@/components/ApiConnectionError";
import { ApiTokenDialog } from "@/components/ApiTokenDialog";
import { CachePanel } from "@/components/CachePanel";
import { ConnectionIndicator } from "@/components/ConnectionIndicator";
import { DrainControl, DrainingBanner } from "@/components/DrainControl";
import { HistoryCharts } from "@/components/HistoryCharts";
import { HostsPanel } from "@/components/HostsPanel";
import { JobDetails } from "@/components/JobDetails";
import { JobRunsTimeline } from "@/components/JobRunsTimeline";
import { SimulatorControl } from "@/components/SimulatorControl";
import { SystemOverview } from "@/components/SystemOverview";
import { UsagePanel } from "@/components/UsagePanel";
import { Badge } from "@/components/ui/badge";
import { VMIdentity } from "@/components/VMIdentity";
import { useStatusConnection, useStatusSelector } from "@/hooks/useStatusStream";
import { useUrlSelection } from "@/hooks/useUrlSelection";

/** "driver: …" and "simulate" beside the title. */
function ServerBadges() {
  const driver = useStatusSelector((s) => s.driver);
  const simulate = useStatusSelector((s) => s.simulate);
  return (
    <div className="flex h-6 items-center gap-1.5">
      {driver !== undefined ? <Badge variant="outline">driver: {driver}</Badge> : null}
      {simulate ? <Badge variant="warning">simulate</Badge> : null}
    </div>
  );
}

/** "Queue a job", only on a server running in simulate mode. */
function SimulatorSlot() {
  const simulate = useStatusSelector((s) => s.simulate);
  return simulate ? <SimulatorControl /> : null;
}

function Main({ children }: { children: ReactNode }) {
  const { isLoading } = useStatusConnection();
  return (
    <main className="flex flex-col gap-4" aria-busy={isLoading}>
      {children}
    </main>
  );
}

export default function OverviewPage() {
  const [vmId, setVmId] = useUrlSelection("vm");
  const [jobId, setJobId] = useUrlSelection("job");

  return (
    <div className="mx-auto flex w-full max-w-[120rem] flex-col gap-4 p-4 lg:p-6">
      <header className="flex min-h-9 flex-wrap items-center justify-between gap-3">
        <div className="flex items-center gap-3">
          <Hammer className="size-6 text-primary" aria-hidden="true" />
          <h1 className="text-lg font-semibold tracking-tight">Blacksmith Mini</h1>
          <ServerBadges />
        </div>
        <DrainingBanner />
        <div className="flex items-center gap-3">
          <SimulatorSlot />
          <DrainControl />
          <ConnectionIndicator />
        </div>
      </header>

      <ApiConnectionError />

      <Main>
        <SystemOverview />
        <div className="grid grid-cols-1 gap-4 xl:grid-cols-5">
          <div className="min-w-0 xl:col-span-3">
            <JobRunsTimeline onSelectJob={setJobId} selectedJobId={jobId} />
          </div>
          <div className="min-w-0 xl:col-span-2">
            <VMIdentity selectedVmId={vmId} onSelectVm={setVmId} onSelectJob={setJobId} />
          </div>
        </div>
        <HostsPanel />
        <HistoryCharts />
        <UsagePanel />
        <CachePanel />
      </Main>

      <JobDetails
        jobId={jobId}
        onClose={() => setJobId(null)}
        onSelectVm={(id) => {
          setVmId(id);
          setJobId(null);
        }}
      />
      <ApiTokenDialog />
    </div>
  );
}
