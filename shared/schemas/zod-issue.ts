/**
 * The one formatter of validation failures: the first issue of a zod error in one line,
 * `path.to.field: message`, or `root: message` / `message` when the whole value is at fault.
 * (z.prettifyError lists every issue over several lines; the CLI and the API answer with one.)
 */
export function issueLine(
  error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] },
  root?: string,
): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.length ? issue.path.map(String).join('.') : root;
  return path === undefined ? issue.message : `${path}: ${issue.message}`;
}
