/**
 * Named aliases for the API's schemas. Every component imports its types from here, and these
 * come from the generated `schema.d.ts`, so a renamed backend field breaks `tsc`, not the page.
 */
import type { components } from "./schema";

type Schemas = components["schemas"];

export type StatusResponse = Schemas["StatusResponse"];
export type Metrics = Schemas["Metrics"];
export type Vm = Schemas["VmOut"];
export type VmStatus = Vm["status"];
export type VmDetail = Schemas["VmDetail"];
export type VmListResponse = Schemas["VmListResponse"];
export type Job = Schemas["JobOut"];
export type JobStages = Schemas["JobStages"];
export type JobDetail = Schemas["JobDetail"];
export type JobListResponse = Schemas["JobListResponse"];
export type ApiEvent = Schemas["EventOut"];
export type Pool = Schemas["PoolOut"];
export type StartBackoff = Schemas["StartBackoff"];
export type GitHubHealth = Schemas["GitHubHealth"];
export type RateLimitKind = NonNullable<GitHubHealth["rate_limit_kind"]>;
export type RepositoryHealth = Schemas["RepositoryHealth"];
export type LoopHealth = Schemas["LoopHealth"];
export type HealthResponse = Schemas["HealthResponse"];
export type HistoryPoint = Schemas["HistoryPoint"];
export type HistoryResponse = Schemas["HistoryResponse"];
export type HistoryWindow = HistoryResponse["window"];
export type SimulatedJobRequest = Schemas["SimulatedJobRequest"];
export type SimulatedJobResponse = Schemas["SimulatedJobResponse"];
export type Conclusion = NonNullable<SimulatedJobRequest["conclusion"]>;
export type ControlState = Schemas["ControlState"];
export type PoolLimits = Schemas["PoolLimits"];
export type OperatorRequest = Schemas["OperatorRequest"];
export type StopVmRequest = Schemas["StopVmRequest"];
export type PoolLimitsRequest = Schemas["PoolLimitsRequest"];
