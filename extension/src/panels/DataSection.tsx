/**
 * The panel's Training data section: the query for the task's unlabelled series (modality,
 * description, study dates) with a live count of the matching series, the atlas excluded.
 */
import type { SeriesQuery, SeriesRef } from '../api/client.js';
import { SECTION, UI } from './ui.js';

const S = SECTION;

export type SeriesCount = { count: number; series: SeriesRef[] } | 'loading' | undefined;

export function DataSection(props: {
  query: SeriesQuery;
  setQuery(q: SeriesQuery): void;
  count: SeriesCount;
}) {
  const { query, setQuery, count } = props;
  return (
    <div style={S.section}>
      <div style={UI.label}>Training data</div>
      <div style={{ display: 'grid', gridTemplateColumns: '1fr 1fr', gap: 4 }}>
        <input
          data-testid="oneshot-query-modality"
          style={S.input}
          placeholder="Modality"
          value={query.modality ?? ''}
          onChange={(e) => setQuery({ ...query, modality: e.target.value })}
        />
        <input
          data-testid="oneshot-query-description"
          style={S.input}
          placeholder="Series description"
          value={query.description ?? ''}
          onChange={(e) => setQuery({ ...query, description: e.target.value })}
        />
        <input
          data-testid="oneshot-query-from"
          style={S.input}
          type="date"
          title="Study date from"
          value={query.from ?? ''}
          onChange={(e) => setQuery({ ...query, from: e.target.value })}
        />
        <input
          data-testid="oneshot-query-to"
          style={S.input}
          type="date"
          title="Study date to"
          value={query.to ?? ''}
          onChange={(e) => setQuery({ ...query, to: e.target.value })}
        />
      </div>
      <div
        data-testid="oneshot-query-count"
        data-count={count && count !== 'loading' ? count.count : ''}
        style={{ ...S.small, marginTop: 4 }}
      >
        {count === 'loading'
          ? 'Counting…'
          : count
            ? `${count.count} unlabelled series match (atlas excluded)`
            : ''}
      </div>
    </div>
  );
}
