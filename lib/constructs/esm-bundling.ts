import type { BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';
import { OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';

/**
 * esbuild options shared by the functions: ESM (the handlers use top-level await), Node 24,
 * source maps, the AWS SDK from the runtime. Bundled locally (esbuild is a dev dependency), no Docker.
 */
export const ESM_BUNDLING = {
  format: OutputFormat.ESM,
  target: 'node24',
  sourceMap: true,
  forceDockerBundling: false,
  // Some dependencies still call require(); give the ES module one.
  banner:
    "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
} satisfies BundlingOptions;
