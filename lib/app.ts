import { App } from 'aws-cdk-lib';
import { MetricOptStack } from './metricopt-stack.js';

const app = new App();
new MetricOptStack(app, 'MetricOpt');
app.synth();
