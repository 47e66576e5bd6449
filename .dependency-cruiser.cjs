/** Architecture rules: data flows entry point -> use-case -> method -> ports; adapters are handed in. */
module.exports = {
  forbidden: [
    {
      name: 'core-imports-no-infrastructure',
      comment: 'shared/ (outside shared/adapters) talks to storage, queues and compute backends through ports only',
      severity: 'error',
      from: { path: '^shared/', pathNot: '^shared/adapters/' },
      to: {
        dependencyTypes: ['npm', 'npm-dev'],
        path: '(@aws-sdk|hono|aws-cdk-lib|constructs|powertools|tfjs-backend|tfjs-node)',
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
