import type { Reporter, TestModule, Vitest } from 'vitest/node';

/**
 * One line at the end of the run saying that the integration tests ran, on which emulator, and
 * how many executed, so a log shows it without reading every test name.
 */
export default class IntegrationSummaryReporter implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const modules = testModules.filter((m) => m.project.name === 'integration');
    if (modules.length === 0) return;
    const counts = { passed: 0, failed: 0, skipped: 0, pending: 0 };
    for (const m of modules) for (const t of m.children.allTests()) counts[t.result().state]++;
    const info = this.vitest?.getProjectByName('integration').getProvidedContext().localstack;
    const where = info?.available
      ? `LocalStack ${info.version} at ${info.endpoint}`
      : `no emulator, SKIPPED (${info?.reason})`;
    const executed = counts.passed + counts.failed;
    console.log(
      `\nintegration tests on ${where}: ${executed} executed in ${modules.length} files ` +
        `(${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped)\n`,
    );
  }
}
