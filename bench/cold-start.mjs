#!/usr/bin/env node
// Cold start of the deployed value API: the bundle `cdk synth` writes (esbuild, as `cdk deploy`
// uploads it), imported in a fresh Node process, then its first answer (a JSON `gradient`
// request, function URL event, IAM auth) from a store folder. Node's own start-up is reported
// apart. Usage (after `npm run build`):
//
//   node bench/cold-start.mjs [--runs 15] [--source-maps]
//
// @aws-sdk/* is not in the bundle (NodejsFunction leaves it to the runtime's copy): it is
// loaded from node_modules here, as from the runtime on Lambda.
//
// --source-maps runs the child with NODE_OPTIONS=--enable-source-maps, as the Lambda is
// configured (lib/constructs/value-api.ts). Prints a Markdown table row and a JSON summary.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '15' },
    'source-maps': { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});

if (args.child) {
  // In the fresh process: time the import and the first answer.
  const t0 = performance.now();
  const { handler } = await import(pathToFileURL(args.child).href);
  const t1 = performance.now();
  const d = 16;
  const phi = Array.from({ length: d }, (_, i) => Math.cos(i));
  const path = '/v1/value-functions/cold/gradient';
  const res = await handler(
    {
      version: '2.0',
      routeKey: '$default',
      rawPath: path,
      rawQueryString: '',
      headers: { 'content-type': 'application/json', host: 'abc.lambda-url.eu-west-1.on.aws' },
      body: JSON.stringify({ phi }),
      isBase64Encoded: false,
      requestContext: {
        accountId: '123456789012',
        apiId: 'abc',
        domainName: 'abc.lambda-url.eu-west-1.on.aws',
        domainPrefix: 'abc',
        http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'bench' },
        requestId: 'r1',
        routeKey: '$default',
        stage: '$default',
        time: '01/Dec/2026:00:00:00 +0000',
        timeEpoch: 0,
        authorizer: {
          iam: {
            accessKey: 'AKIA',
            accountId: '123456789012',
            callerId: 'AIDA',
            userArn: 'arn:aws:iam::123456789012:user/bench',
            userId: 'AIDA',
          },
        },
      },
    },
    {},
  );
  const t2 = performance.now();
  if (res.statusCode !== 200) throw new Error(`cold-start: first answer was ${res.statusCode}: ${res.body}`);
  process.stdout.write(`${JSON.stringify({ boot: t0, import: t1 - t0, first: t2 - t1 })}\n`);
  process.exit(0);
}

if (!existsSync(join(root, 'dist/lib/metricopt-stack.js'))) throw new Error('cold-start: run npm run build first');
// Inside the project, so that the bundle finds @aws-sdk/* (external: the Lambda runtime provides
// it) in node_modules, as it finds the runtime's copy on Lambda.
mkdirSync(join(root, 'dist'), { recursive: true });
const work = mkdtempSync(join(root, 'dist', 'cold-start-'));
try {
  // 1. The bundle, as cdk synth writes it.
  const { App } = await import('aws-cdk-lib');
  const { MetricOptStack } = await import(pathToFileURL(join(root, 'dist/lib/metricopt-stack.js')).href);
  const app = new App({ outdir: join(work, 'cdk.out') });
  const stack = new MetricOptStack(app, 'ColdStart');
  const assembly = app.synth();
  // The value API's code asset: the folder named by the hash in its function's S3 key (the
  // evaluator function has a bundle of its own).
  const template = assembly.getStackArtifact(stack.artifactId).template;
  const keys = Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::Lambda::Function' && r.Properties?.Environment?.Variables?.METRICOPT_AUTH)
    .map((r) => String(r.Properties.Code.S3Key));
  const bundles = readdirSync(assembly.directory)
    .filter((name) => name.startsWith('asset.') && keys.some((k) => k.startsWith(name.slice('asset.'.length))))
    .map((name) => join(assembly.directory, name, 'index.mjs'))
    .filter((file) => existsSync(file));
  if (bundles.length !== 1) throw new Error(`cold-start: expected one value API bundle, found ${bundles.length}`);
  const bundle = bundles[0];
  const bundleBytes = statSync(bundle).size;

  // 2. A store folder with one checkpoint (d = 16, d-64-32-32-16-1), written by the library.
  const store = join(work, 'store');
  mkdirSync(store);
  const { FsObjectStore } = await import(pathToFileURL(join(root, 'dist/shared/adapters/object-store.fs.js')).href);
  const { saveCheckpoint } = await import(
    pathToFileURL(join(root, 'dist/shared/storage/value-function-store.js')).href
  );
  const { Rng } = await import(pathToFileURL(join(root, 'dist/shared/util/random.js')).href);
  const rng = new Rng(5);
  const d = 16;
  const widths = [d, 64, 32, 32, 16, 1];
  await saveCheckpoint(new FsObjectStore(store), {
    format: 'metricopt.value-function',
    schemaVersion: 1,
    id: 'cold',
    createdAt: '2026-12-01T00:00:00.000Z',
    libraryVersion: '0.1.0',
    d,
    metric: { name: 'f1', direction: 'maximize' },
    recipe: 'tuned',
    dataset: 'a9a',
    adapter: { kind: 'input-bias', d },
    inputNormalisation: { mean: Array.from({ length: d }, () => 0), std: Array.from({ length: d }, () => 1) },
    targetNormalisation: { mean: 0.3, std: 0.05 },
    hiddenActivation: 'relu',
    embeddingLayer: 3,
    members: [
      {
        layers: widths.slice(0, -1).map((nin, i) => ({
          in: nin,
          out: widths[i + 1],
          weights: Array.from(rng.normals(nin * widths[i + 1], Math.sqrt(2 / nin))),
          bias: Array.from(rng.normals(widths[i + 1], 0.05)),
        })),
      },
    ],
    training: { tasks: 100, heldOutTasks: 10, heldOutMae: 0.01, constantMae: 0.02, spearman: 0.8 },
  });

  // 3. Fresh processes, one cold start each.
  const runs = Number(args.runs);
  const env = {
    ...process.env,
    METRICOPT_STORE: store,
    METRICOPT_AUTH: 'iam',
    NODE_OPTIONS: args['source-maps'] ? '--enable-source-maps' : '',
  };
  const samples = [];
  const load = [loadavg()[0]];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', bundle], {
      env,
      encoding: 'utf8',
    });
    const wall = Number(process.hrtime.bigint() - start) / 1e6;
    samples.push({ ...JSON.parse(out.trim()), wall });
  }
  load.push(loadavg()[0]);
  const median = (key) => {
    const v = samples.map((s) => s[key]).sort((a, b) => a - b);
    return v[v.length >> 1];
  };
  const max = (key) => Math.max(...samples.map((s) => s[key]));
  const summary = {
    date: new Date().toISOString(),
    node: process.version,
    runs,
    sourceMaps: args['source-maps'],
    bundleBytes,
    loadAverage: load.map((l) => Number(l.toFixed(2))),
    medianMs: {
      nodeBoot: median('boot'),
      import: median('import'),
      firstAnswer: median('first'),
      importPlusFirst: median('import') + median('first'),
      processWall: median('wall'),
    },
    maxMs: { import: max('import'), firstAnswer: max('first') },
  };
  const f = (x) => x.toFixed(0);
  const m = summary.medianMs;
  process.stdout.write(
    `| ${(bundleBytes / 1024).toFixed(0)} kB | ${args['source-maps'] ? 'on' : 'off'} | ${f(m.nodeBoot)} | ${f(m.import)} (max ${f(summary.maxMs.import)}) | ${f(m.firstAnswer)} (max ${f(summary.maxMs.firstAnswer)}) | **${f(m.importPlusFirst)}** | ${f(m.processWall)} |\n`,
  );
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  writeFileSync(join(root, 'dist', 'cold-start.json'), `${JSON.stringify(summary, null, 2)}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
