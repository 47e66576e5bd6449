import { Command, CommanderError } from 'commander';
import { registerData } from './commands/data.js';
import { registerDemo } from './commands/demo.js';
import { registerEvaluate } from './commands/evaluate.js';
import { registerFit } from './commands/fit.js';
import { registerJobs } from './commands/jobs.js';
import { registerTrain } from './commands/train.js';
import { registerServe } from './commands/serve.js';
import { cliEnvSchema, resetCliEnv } from './env.js';
import { formatError } from './errors.js';
import { LIBRARY_VERSION } from '../shared/version.js';

/** Each subcommand lives in cli/commands/<name>.ts and registers itself here. */
const registrations: Array<(program: Command) => void> = [
  registerDemo,
  registerTrain,
  registerServe,
  registerEvaluate,
  registerJobs,
  registerFit,
  registerData,
];

export function buildProgram(): Command {
  const program = new Command('metricopt')
    .description(
      'Learn a value function of a black-box metric and fine-tune adapters toward it (MetricOpt, CVPR 2021).',
    )
    .version(LIBRARY_VERSION)
    .showHelpAfterError(false)
    .exitOverride();
  for (const register of registrations) register(program);
  return program;
}

/** Runs the CLI; returns the process exit code. Errors end as one line on stderr, no stack trace. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  resetCliEnv(); // each run reads the environment once
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
        return 0;
      }
      return e.exitCode || 2;
    }
    const { line, expected } = formatError(e);
    process.stderr.write(`${line}\n`);
    if (!expected && cliEnvSchema.shape.METRICOPT_DEBUG.parse(process.env.METRICOPT_DEBUG)) {
      process.stderr.write(`${(e as Error).stack}\n`);
    }
    return 1;
  }
}
