import { describe, expect, it } from 'vitest';
import { type CfnTemplate, deployableTemplate, referencesIn } from '../integration/deployable-template.js';

describe('referencesIn', () => {
  it('finds Ref, both GetAtt forms and Sub names, but not pseudo parameters, Sub literals or Sub variables', () => {
    const value = {
      a: { Ref: 'Queue' },
      b: { 'Fn::GetAtt': ['Bucket', 'Arn'] },
      c: { 'Fn::GetAtt': 'Role.Arn' },
      d: { Ref: 'AWS::Region' },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Fn::Sub syntax, not a JS template
      e: { 'Fn::Sub': 'arn:${AWS::Partition}:logs:${Group}:${Fn.Arn}:${!Literal}' },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Fn::Sub syntax, not a JS template
      f: { 'Fn::Sub': ['${Local}-${Param}', { Local: { Ref: 'Inner' } }] },
    };
    expect([...referencesIn(value)].sort()).toEqual(['Bucket', 'Fn', 'Group', 'Inner', 'Param', 'Queue', 'Role']);
  });
});

describe('deployableTemplate', () => {
  const source: CfnTemplate = {
    Parameters: {
      BootstrapVersion: { Type: 'AWS::SSM::Parameter::Value<String>' },
      Ami: { Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>' },
      Kept: { Type: 'String' },
    },
    Rules: { CheckBootstrapVersion: { Assertions: [{ Assert: { 'Fn::Not': [{ Ref: 'BootstrapVersion' }] } }] } },
    Resources: {
      Queue: { Type: 'AWS::SQS::Queue', Properties: { QueueName: { Ref: 'Kept' } } },
      Fn: { Type: 'AWS::Lambda::Function', Properties: {} },
      Template: { Type: 'AWS::EC2::LaunchTemplate', Properties: { ImageId: { Ref: 'Ami' } } },
      // Two steps from the function: the alarm's action is a policy that names the function.
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Fn::Sub syntax, not a JS template
      FnPolicy: { Type: 'AWS::IAM::Policy', Properties: { Resource: { 'Fn::Sub': '${Fn.Arn}' } } },
      FnAlarm: { Type: 'AWS::CloudWatch::Alarm', Properties: { AlarmActions: [{ Ref: 'FnPolicy' }] } },
      Waits: { Type: 'AWS::S3::Bucket', DependsOn: ['Queue', 'Template'] },
      QueueAlarm: { Type: 'AWS::CloudWatch::Alarm', Properties: { Dimensions: [{ Value: { Ref: 'Queue' } }] } },
      Custom: { Type: 'Custom::S3AutoDeleteObjects', Properties: {} },
    },
    Outputs: {
      QueueUrl: { Value: { Ref: 'Queue' } },
      FnArn: { Value: { 'Fn::GetAtt': ['Fn', 'Arn'] } },
    },
  };

  it('drops the undeployable types and, transitively, what refers to them, and says why', () => {
    const d = deployableTemplate(source);

    expect(Object.keys(d.template.Resources).sort()).toEqual(['Queue', 'QueueAlarm']);
    expect(d.droppedResources).toEqual({
      Fn: { reason: 'type', type: 'AWS::Lambda::Function' },
      Template: { reason: 'type', type: 'AWS::EC2::LaunchTemplate' },
      Custom: { reason: 'type', type: 'Custom::S3AutoDeleteObjects' },
      FnPolicy: { reason: 'refers to Fn', type: 'AWS::IAM::Policy' },
      FnAlarm: { reason: 'refers to FnPolicy', type: 'AWS::CloudWatch::Alarm' },
      Waits: { reason: 'refers to Template', type: 'AWS::S3::Bucket' },
    });
    expect(d.droppedOutputs).toEqual(['FnArn']);
    expect(Object.keys(d.template.Outputs ?? {})).toEqual(['QueueUrl']);
  });

  it('drops the bootstrap parameter with its rule and the parameters only dropped resources used', () => {
    const d = deployableTemplate(source);

    expect(d.droppedParameters).toEqual(['BootstrapVersion', 'Ami']);
    expect(d.template.Parameters).toEqual({ Kept: { Type: 'String' } });
    expect(d.droppedRules).toEqual(['CheckBootstrapVersion']);
    expect(d.template.Rules).toBeUndefined();
    // The source is left as it was.
    expect(Object.keys(source.Resources)).toHaveLength(8);
  });
});
