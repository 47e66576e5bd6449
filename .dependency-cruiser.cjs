/** Architecture rules: data flows entry point -> use-case -> method -> ports; adapters are handed in. */

/**
 * The npm packages the domain core (shared/ outside shared/adapters/) may import: validation and
 * the tfjs core API. Storage, queues, the network, module loading, processes and tfjs backends
 * are adapters (shared/adapters/), chosen by the entry points.
 */
const CORE_PACKAGES = ['zod', '@tensorflow/tfjs'];
/** Node built-ins the core may import: pure computation only (no files, network, processes or workers). */
const CORE_BUILTINS = ['crypto'];

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

module.exports = {
  forbidden: [
    {
      name: 'core-imports-only-allowed-packages',
      comment: `the domain core imports only ${CORE_PACKAGES.join(', ')} (and node:${CORE_BUILTINS.join(', node:')}); anything that talks to the outside world is an adapter in shared/adapters/`,
      severity: 'error',
      from: { path: '^shared/', pathNot: '^shared/adapters/' },
      to: {
        dependencyTypes: [
          'npm',
          'npm-dev',
          'npm-optional',
          'npm-peer',
          'npm-bundled',
          'npm-no-pkg',
          'npm-unknown',
          'core',
          'unknown',
          'undetermined',
        ],
        pathNot: [
          `^node_modules/(${CORE_PACKAGES.map(escapeRegExp).join('|')})/`,
          `^(node:)?(${CORE_BUILTINS.map(escapeRegExp).join('|')})$`,
        ],
      },
    },
    {
      name: 'core-imports-no-adapters',
      comment: 'entry points choose adapters and hand them to use-cases',
      severity: 'error',
      from: { path: '^shared/', pathNot: '^shared/adapters/' },
      to: { path: '^shared/adapters/' },
    },
    {
      name: 'core-imports-no-entry-points',
      severity: 'error',
      from: { path: '^shared/' },
      to: { path: '^(cli|functions|gpu-tasks|lib)/' },
    },
    {
      name: 'schemas-import-only-zod',
      comment: 'shared/schemas/ holds the wire formats: zod and other schemas only, no behaviour (issue 21)',
      severity: 'error',
      from: { path: '^shared/schemas/' },
      to: { pathNot: ['^shared/schemas/', '^node_modules/zod/'] },
    },
    {
      name: 'inner-layers-import-no-use-cases',
      comment:
        'data flows entry point -> use-case -> method -> ports: the maths (method/, models/, data/), the metrics, the report, the storage layout and its repositories, the ports and the schemas never import a use-case',
      severity: 'error',
      from: { path: '^shared/(method|models|data|metrics|report|storage|ports|schemas|util)/' },
      to: { path: '^shared/use-cases/' },
    },
    {
      name: 'storage-imports-no-maths',
      comment: 'the storage layout and its repositories stay free of tfjs and the method (the value API reads them)',
      severity: 'error',
      from: { path: '^shared/storage/' },
      to: { path: ['^shared/(method|models|data|metrics|report)/', '^node_modules/@tensorflow/'] },
    },
    {
      name: 'cli-imports-no-functions',
      comment: 'the CLI builds on the core and the adapters, not on the Lambda/HTTP entry points',
      severity: 'error',
      from: { path: '^cli/', pathNot: '^cli/commands/serve\\.ts$' },
      to: { path: '^functions/' },
    },
    {
      name: 'serve-imports-only-the-value-api-server',
      comment:
        '`metricopt serve` starts the value API Node server (node.ts); the store comes from shared/adapters/from-url.ts, config defaults and the key format from shared/schemas/',
      severity: 'error',
      from: { path: '^cli/commands/serve\\.ts$' },
      to: { path: '^functions/', pathNot: '^functions/value-api/node\\.ts$' },
    },
    {
      name: 'entry-points-import-no-other-entry-points',
      comment: 'functions, gpu-tasks and lib do not import each other or the CLI; shared code lives in shared/',
      severity: 'error',
      from: { path: '^(functions|gpu-tasks|lib)/' },
      to: { path: '^(cli|functions|gpu-tasks|lib)/', pathNot: '^$1/' },
    },
    {
      name: 'functions-import-no-other-functions',
      comment: 'each function is its own entry point (functions/env.ts is their shared environment helper)',
      severity: 'error',
      from: { path: '^functions/([^/]+)/' },
      to: { path: '^functions/[^/]+/', pathNot: ['^functions/$1/'] },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^dist/|\\.test\\.ts$)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
