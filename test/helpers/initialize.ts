// The session-era initialize request a raw-HTTP test client sends first (id 1).

/** A 2025-11-25 `initialize` with no capabilities, as JSON-RPC request 1. */
export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 't', version: '0' },
  },
}
