type Issue = { path: readonly PropertyKey[]; message: string };
type Issues = { issues: readonly Issue[] };

/**
 * The one formatter of validation failures. `issueLine`: the first issue of a zod error in one
 * line, `path.to.field: message`, or `root: message` / `message` when the whole value is at fault
 * (the CLI and the API answer with one). `issueLines`: configuration (environment variables,
 * CDK settings), whose messages name their setting: every issue, joined with `; `, the path
 * written only when the message does not name it already (`METRICOPT_STORE is required`).
 * (z.prettifyError lists every issue over several lines.)
 */
export function issueLine(error: Issues, root?: string): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = pathOf(issue, root);
  return path === undefined ? issue.message : `${path}: ${issue.message}`;
}

/** Every issue of a configuration's zod error, joined with `; ` (see issueLine). */
export function issueLines(error: Issues): string {
  if (!error.issues.length) return 'invalid';
  return error.issues
    .map((issue) => {
      const path = pathOf(issue, undefined);
      const named = path === undefined || namesWord(issue.message, String(issue.path[0]));
      return named ? issue.message : `${path}: ${issue.message}`;
    })
    .join('; ');
}

function pathOf(issue: Issue, root: string | undefined): string | undefined {
  return issue.path.length ? issue.path.map(String).join('.') : root;
}

/** True when `word` occurs in `text` with no letter, digit or `_` on either side. */
function namesWord(text: string, word: string): boolean {
  for (let i = text.indexOf(word); i !== -1; i = text.indexOf(word, i + 1)) {
    if (!/\w/.test(text[i - 1] ?? '') && !/\w/.test(text[i + word.length] ?? '')) return true;
  }
  return false;
}
