// Every metric the service exports, request path and scheduled flush together: what the Grafana
// dashboard test checks its queries against.

import { METRICS, type MetricDescriptor } from '../../shared/telemetry/catalogue.ts';
import { FLUSH_METRICS } from '../../shared/telemetry/flush-catalogue.ts';

export const ALL_METRICS: readonly MetricDescriptor[] = [...Object.values(METRICS), ...Object.values(FLUSH_METRICS)];
