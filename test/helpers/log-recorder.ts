// A pino logger for tests whose lines are kept, parsed, and told as events as they are written.
import { EventEmitter, once } from 'node:events'
import { pino } from 'pino'

/**
 * A logger at debug whose lines are kept (`lines`, parsed) and emitted (`events`, 'line');
 * `line(re)` resolves with the first line, kept or to come, whose msg matches.
 */
export function recorder() {
  const events = new EventEmitter()
  const lines: Record<string, any>[] = []
  const log = pino({ level: 'debug' }, {
    write: (line: string) => {
      const parsed = JSON.parse(line)
      lines.push(parsed)
      events.emit('line', parsed)
    },
  } as never)
  const line = async (test: RegExp): Promise<Record<string, any>> => {
    for (;;) {
      const seen = lines.find((l) => test.test(l.msg))
      if (seen !== undefined) return seen
      await once(events, 'line')
    }
  }
  return { log, lines, events, line }
}
