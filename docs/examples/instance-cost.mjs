/**
 * An example user metric that depends on who is scored (README: "The evaluator contract").
 *
 * Instance cost: missing a positive row costs that row's `amount` (a context column supplied with
 * the data set, `--context amounts.csv`), a false alarm costs 1. The value is the total cost
 * divided by the cost of getting every row wrong, so it lies in [0, 1]; lower is better.
 *
 *   npx metricopt demo --evaluator docs/examples/instance-cost.mjs --context amounts.csv
 *
 * `rows[i]` is the data set row scored by `scores[i]` / `labels[i]` and `context.amount[i]` is
 * that row's amount (already sliced to the scored rows, in the same order). The same module runs
 * in process, in a worker thread, behind the evaluation queue and in fit jobs. (Its name is not
 * the built-in's, so evaluator workers may offer both.)
 */
export default {
  name: 'example-instance-cost',
  direction: 'minimize',
  version: '1',
  evaluate({ scores, labels, rows, context }) {
    const amount = context?.amount;
    if (amount === undefined) {
      throw new Error('example-instance-cost needs a context column "amount" (metricopt ... --context FILE)');
    }
    if (rows !== undefined && rows.length !== labels.length) throw new Error('rows and labels differ in length');
    let cost = 0;
    let worst = 0;
    for (let i = 0; i < labels.length; i++) {
      const positive = labels[i] === 1;
      const predicted = scores[i] >= 0.5;
      const price = positive ? amount[i] : 1;
      worst += price;
      if (positive !== predicted) cost += price;
    }
    return worst === 0 ? 0 : cost / worst;
  },
};
