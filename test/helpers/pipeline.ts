/**
 * Dependencies of the pipeline for tests that run it without Fastify: a log that keeps its lines, and
 * an audit trail that keeps the records it is given.
 */
import type { ObjectionRecord, ServiceCallRecord } from '../../src/audit/events.js';
import type { PipelineDeps, PipelineLog } from '../../src/pipeline.js';

export interface LogLine {
  level: 'info' | 'warn';
  message: string;
  fields: Record<string, unknown>;
}

/** A log that keeps every line, with the bindings of the child it was written through. */
export function memoryLog(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): PipelineLog {
  const write = (level: LogLine['level']) => (fields: Record<string, unknown>, message: string) =>
    lines.push({ level, message, fields: { ...bindings, ...fields } });
  return {
    info: write('info'),
    warn: write('warn'),
    child: (more) => memoryLog(lines, { ...bindings, ...more }),
  };
}

export interface MemoryAudit extends Pick<PipelineDeps['audit'], 'recordServiceCall' | 'recordObjection'> {
  calls: ServiceCallRecord[];
  objections: ObjectionRecord[];
}

/** An audit trail that keeps what it is asked to record. */
export function memoryAudit(): MemoryAudit {
  const calls: ServiceCallRecord[] = [];
  const objections: ObjectionRecord[] = [];
  return {
    calls,
    objections,
    recordServiceCall: async (record) => void calls.push(record),
    recordObjection: async (record) => void objections.push(record),
  };
}
