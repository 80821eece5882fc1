"use client";
/**
 * The overview page: composes the widgets around one live data subscription (useVMData).
 */
import { useQuery } from "@tanstack/react-query";
import { Hammer } from "lucide-react";
import { useMemo } from "react";
import { ApiConnectionError } from "@/components/ApiConnectionError";
import { ApiTokenDialog } from "@/components/ApiTokenDialog";
import { ConnectionIndicator } from "@/components/ConnectionIndicator";
import { DrainControl, DrainingBanner } from "@/components/DrainControl";
import { HistoryCharts } from "@/components/HistoryCharts";
import { JobDetails } from "@/components/JobDetails";
import { JobRunsTimeline } from "@/components/JobRunsTimeline";
import { SimulatorControl } from "@/components/SimulatorControl";
import { SystemOverview } from "@/components/SystemOverview";
import { Badge } from "@/components/ui/badge";
import { VMIdentity } from "@/components/VMIdentity";
import { useUrlSelection } from "@/hooks/useUrlSelection";
import { useVMData } from "@/hooks/useVMData";
import { vmsQueryOptions } from "@/lib/api/queries";
import { defaultVmId, mergeVms } from "@/lib/vms";

export default function OverviewPage() {
  const { data: status, error, isLoading, mode, lastUpdatedAt } = useVMData();
  const vmsQuery = useQuery({ ...vmsQueryOptions(), enabled: status !== undefined });
  const vms = useMemo(
    () => mergeVms(status?.vms, vmsQuery.data?.vms),
    [status?.vms, vmsQuery.data],
  );
  const [vmParam, setVmParam] = useUrlSelection("vm");
  const [jobId, setJobId] = useUrlSelection("job");
  const selectedVmId = vmParam ?? defaultVmId(vms);

  return (
    <div className="mx-auto flex w-full max-w-[120rem] flex-col gap-4 p-4 lg:p-6">
      <header className="flex min-h-9 flex-wrap items-center justify-between gap-3">
        <div className="flex items-center gap-3">
          <Hammer className="size-6 text-primary" aria-hidden="true" />
          <h1 className="text-lg font-semibold tracking-tight">Blacksmith Mini</h1>
          <div className="flex h-6 items-center gap-1.5">
            {status ? <Badge variant="outline">driver: {status.driver}</Badge> : null}
            {status?.simulate ? <Badge variant="warning">simulate</Badge> : null}
          </div>
        </div>
        <DrainingBanner draining={status?.draining} />
        <div className="flex items-center gap-3">
          {status?.simulate ? <SimulatorControl /> : null}
          <DrainControl draining={status?.draining} />
          <ConnectionIndicator mode={mode} lastUpdatedAt={lastUpdatedAt} />
        </div>
      </header>

      {mode === "offline" ? (
        <ApiConnectionError lastUpdatedAt={lastUpdatedAt} error={error} />
      ) : null}

      <main className="flex flex-col gap-4" aria-busy={isLoading}>
        <SystemOverview status={status} isLoading={isLoading} error={error} />
        <div className="grid grid-cols-1 gap-4 xl:grid-cols-5">
          <div className="min-w-0 xl:col-span-3">
            <JobRunsTimeline
              status={status}
              statusLoading={isLoading}
              onSelectJob={setJobId}
              selectedJobId={jobId}
            />
          </div>
          <div className="min-w-0 xl:col-span-2">
            <VMIdentity
              vms={vms}
              isLoading={isLoading}
              error={status ? null : error}
              selectedVmId={selectedVmId}
              onSelectVm={setVmParam}
              onSelectJob={setJobId}
              simulate={status?.simulate ?? false}
            />
          </div>
        </div>
        <HistoryCharts />
      </main>

      <JobDetails
        jobId={jobId}
        onClose={() => setJobId(null)}
        onSelectVm={(vmId) => {
          setVmParam(vmId);
          setJobId(null);
        }}
      />
      <ApiTokenDialog />
    </div>
  );
}
