export {
  ATTRIBUTES,
  type AttributeDeclaration,
  type AttributeName,
  type AttributePattern,
  AttributeRegistry,
  type AttributeSpec,
  type AttrSource,
  type AttrType,
  type BaseInput,
  baseAttributes,
  KNOWN_ATTRIBUTES,
  localTime,
  RESOLVERS,
  type RequestFacts,
  type ResolverName,
  VELOCITY_ATTRIBUTE,
  WEEKDAYS,
} from './attributes.ts';
export { DEFAULT_CURRENCY_RATES, minorUnitExponent, toUsd } from './currency.ts';
export { PolicyError } from './errors.ts';
export { decide } from './evaluate.ts';
export type { Expr, RuleAst } from './parser.ts';
export { parseRule } from './parser.ts';
export { loadPolicyFile, type ParseOptions, parsePolicy, STARTER_POLICY_PATH } from './policy.ts';
export type {
  Attributes,
  AttrValue,
  BusinessHours,
  CompiledRule,
  EvalInput,
  Outcome,
  OutsideAirlock,
  OutsideSource,
  Policy,
  PolicyDecision,
  PolicyMode,
  RuleOptions,
} from './types.ts';
