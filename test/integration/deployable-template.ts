/**
 * The part of a synthesized CloudFormation template that LocalStack's open-source core can
 * deploy: its Lambda and ECS do not run here (issue 14), so the functions, the training cluster
 * and what only exists for them (VPC, auto scaling, custom resources) go, and so does every
 * resource or output that refers to one of those, transitively. CDK's bootstrap check and asset
 * parameters go too: the template is deployed through CloudFormation's CreateStack with its body,
 * not through `cdk deploy`, so nothing is bootstrapped and no asset is published.
 */

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DependsOn?: string | string[];
  [key: string]: unknown;
}

export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Parameters?: Record<string, unknown>;
  Outputs?: Record<string, { Value: unknown; [key: string]: unknown }>;
  Rules?: Record<string, unknown>;
  [section: string]: unknown;
}

/** Resource types the emulator cannot deploy (or that exist only for what it cannot). */
export const UNDEPLOYABLE_TYPE_PREFIXES = [
  'AWS::Lambda::',
  'AWS::ECS::',
  'AWS::AutoScaling::',
  'AWS::ApplicationAutoScaling::',
  'AWS::EC2::',
  'AWS::CloudFormation::CustomResource',
  'Custom::',
  'AWS::CDK::Metadata',
] as const;

/** Parameters that belong to `cdk deploy` (the bootstrap version, legacy asset parameters). */
const CDK_PARAMETER = /^(BootstrapVersion$|AssetParameters)/;

export interface Dropped {
  /** Why: its type cannot be deployed, or it refers (Ref, GetAtt, Sub, DependsOn) to what was dropped. */
  reason: 'type' | `refers to ${string}`;
  type: string;
}

export interface DeployableTemplate {
  template: CfnTemplate;
  /** Dropped resources by logical id. */
  droppedResources: Record<string, Dropped>;
  droppedParameters: string[];
  droppedOutputs: string[];
  droppedRules: string[];
}

/**
 * The logical ids (of resources and parameters) that `value` refers to: `Ref`, `Fn::GetAtt`
 * (both forms) and the `${Name}` / `${Name.Attr}` of `Fn::Sub` (not `${!Literal}`, not its own
 * variables); pseudo parameters (`AWS::Region`) are not ids.
 */
export function referencesIn(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const v of value) referencesIn(v, into);
    return into;
  }
  if (value === null || typeof value !== 'object') return into;
  for (const [key, v] of Object.entries(value)) {
    if (key === 'Ref' && typeof v === 'string') {
      if (!v.startsWith('AWS::')) into.add(v);
    } else if (key === 'Fn::GetAtt') {
      const target = Array.isArray(v) ? v[0] : typeof v === 'string' ? v.split('.')[0] : undefined;
      if (typeof target === 'string') into.add(target);
      else referencesIn(v, into);
    } else if (key === 'Fn::Sub') {
      const [text, vars] = Array.isArray(v) ? [v[0], v[1] as Record<string, unknown> | undefined] : [v, undefined];
      if (typeof text === 'string') {
        for (const m of text.matchAll(/\$\{([^!}][^}]*)\}/g)) {
          const name = (m[1] as string).split('.')[0] as string;
          if (!name.startsWith('AWS::') && !(vars && name in vars)) into.add(name);
        }
      }
      if (vars) referencesIn(vars, into);
    } else {
      referencesIn(v, into);
    }
  }
  return into;
}

/** What a resource depends on: its references and its DependsOn. */
function dependenciesOf(resource: CfnResource): Set<string> {
  const deps = referencesIn({ ...resource, DependsOn: undefined });
  for (const d of [resource.DependsOn ?? []].flat()) deps.add(d);
  return deps;
}

/** The deployable part of `source` (which is not modified), with what was dropped and why. */
export function deployableTemplate(source: CfnTemplate): DeployableTemplate {
  const template = structuredClone(source);
  const droppedResources: Record<string, Dropped> = {};
  const droppedParameters = Object.keys(template.Parameters ?? {}).filter((p) => CDK_PARAMETER.test(p));
  const gone = new Set<string>(droppedParameters);

  for (const [id, r] of Object.entries(template.Resources)) {
    if (UNDEPLOYABLE_TYPE_PREFIXES.some((p) => r.Type.startsWith(p))) {
      droppedResources[id] = { reason: 'type', type: r.Type };
      gone.add(id);
    }
  }
  // The closure: drop whatever refers to something dropped until nothing changes.
  for (let changed = true; changed; ) {
    changed = false;
    for (const [id, r] of Object.entries(template.Resources)) {
      if (gone.has(id)) continue;
      const hit = [...dependenciesOf(r)].find((d) => gone.has(d));
      if (hit !== undefined) {
        droppedResources[id] = { reason: `refers to ${hit}`, type: r.Type };
        gone.add(id);
        changed = true;
      }
    }
  }
  for (const id of Object.keys(droppedResources)) delete template.Resources[id];

  const droppedOutputs: string[] = [];
  for (const [name, output] of Object.entries(template.Outputs ?? {})) {
    if ([...referencesIn(output)].some((d) => gone.has(d))) {
      droppedOutputs.push(name);
      delete template.Outputs?.[name];
    }
  }
  // Parameters nothing kept uses any more (e.g. the GPU AMI's SSM parameter of the launch template).
  const used = referencesIn([template.Resources, template.Outputs ?? {}]);
  for (const name of Object.keys(template.Parameters ?? {})) {
    if (!used.has(name) && !droppedParameters.includes(name)) droppedParameters.push(name);
  }
  for (const name of droppedParameters) delete template.Parameters?.[name];
  if (template.Parameters && Object.keys(template.Parameters).length === 0) delete template.Parameters;
  // CDK's rule checks the bootstrap version, which is dropped with its parameter.
  const droppedRules: string[] = [];
  for (const [name, rule] of Object.entries(template.Rules ?? {})) {
    if ([...referencesIn(rule)].some((d) => droppedParameters.includes(d))) {
      droppedRules.push(name);
      delete template.Rules?.[name];
    }
  }
  if (template.Rules && Object.keys(template.Rules).length === 0) delete template.Rules;

  return { template, droppedResources, droppedParameters, droppedOutputs, droppedRules };
}
