import type { AuditEvent } from '../../gateway/observability/audit.js'

/** An allowed `tools/call` of `echo` by `sub`: the audit event tests write, vary and count. */
export function auditEvent(sub: string): AuditEvent {
  return {
    sub,
    iss: 'https://idp.example',
    clientId: 'client',
    server: 'echo',
    method: 'tools/call',
    name: 'echo',
    decision: 'allow',
    rule: 'policy.yaml:3 echo',
    outcome: 'ok',
  }
}
