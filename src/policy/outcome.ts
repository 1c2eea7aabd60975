/**
 * What a rule asks for and what a decision comes to. Its own file because both the parser (a rule's AST names its
 * outcome) and the compiled policy's types (which hold that AST) need it: in either of them it made a cycle.
 */
export type Outcome = 'allow' | 'review' | 'block';
