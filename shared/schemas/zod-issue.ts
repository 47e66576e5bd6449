type Issues = { issues: readonly { path: readonly PropertyKey[]; message: string }[] };

/**
 * The one formatter of validation failures: a zod issue in one line, `path.to.field: message`,
 * the path left out when the message already names it (`METRICOPT_STORE is required`), or
 * `root: message` / `message` when the whole value is at fault. `issueLine` words the first
 * issue (the CLI and the API answer with one); `issueLines` every issue, joined with `; `
 * (configuration: each bad setting at once). z.prettifyError lists them over several lines.
 */
export function issueLine(error: Issues, root?: string): string {
  const issue = error.issues[0];
  return issue ? oneIssue(issue, root) : 'invalid';
}

/** Every issue of a zod error, each as `issueLine` words it, joined with `; `. */
export function issueLines(error: Issues, root?: string): string {
  return error.issues.length ? error.issues.map((i) => oneIssue(i, root)).join('; ') : 'invalid';
}

function oneIssue(issue: Issues['issues'][number], root: string | undefined): string {
  const path = issue.path.length ? issue.path.map(String).join('.') : root;
  if (path === undefined) return issue.message;
  // The message already names its field as a word (`METRICOPT_X is required`): not twice.
  const head = issue.path.length ? String(issue.path[0]) : path;
  const named = issue.message.startsWith(head) && !/\w/.test(issue.message[head.length] ?? '');
  return named ? issue.message : `${path}: ${issue.message}`;
}
