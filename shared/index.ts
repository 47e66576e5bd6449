// Public API of the `metricopt` package (the CLI is `npx metricopt`; the HTTP client is `metricopt/client`).
export type { EvaluationInput, Evaluator, Direction } from './ports/evaluator.port.js';
export { normalise, denormalise } from './metrics/evaluator.js';
export { builtinEvaluator, builtinNames } from './metrics/registry.js';
export { evaluateChecked } from './metrics/checked-evaluator.js';
export { CompiledValueFunction, type ValueFn } from './method/value-function-f32.js';
export { guidedEsDirection, orthonormalBasis, searchCovariance } from './method/guided-es.js';
export { fitGp } from './method/gp.js';
export { valueFunctionCheckpointSchema, type ValueFunctionCheckpoint } from './schemas/checkpoint.js';
export { demoReportSchema, type DemoReport } from './schemas/report.js';
export type { ObjectStore } from './ports/object-store.port.js';
export type { MetricOracle, MetricQuery } from './ports/metric-oracle.port.js';
export { loadCheckpoint, saveCheckpoint, listCheckpointVersions } from './storage/value-function-store.js';
export { runDemo } from './use-cases/training/run-demo.js';
export { metaTrain } from './use-cases/training/meta-train.js';
export { paperRecipe, tunedRecipe, type RunConfig } from './use-cases/training/recipes.js';
export { LIBRARY_VERSION } from './version.js';
