import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { EntryKinds } from './kinds.js';
import type { DiskTier } from './persistence.js';
import type { EntryStore } from './store.js';

/**
 * Loads the files into the store. The TTL in force now caps each entry, so shortening a TTL takes effect on old
 * entries too. Values stay JSON text until first used, when they are parsed and pass their endpoint's `entry` schema
 * or are dropped (see `EntryStore.setText`). Never rejects: a failure leaves the cache empty.
 */
export async function restore(disk: DiskTier, into: { store: EntryStore; kinds: EntryKinds; clock: Clock; logger: Logger }): Promise<void> {
    const { store, kinds, clock, logger } = into;
    let read = 0;
    let loaded = 0;
    try {
        const now = clock.now();
        await disk.load(({ key, fetchedAt, expiresAt, text }) => {
            read++;
            // A fetchedAt in the future means the clock moved back or the file is not ours: its age cannot be trusted.
            if (fetchedAt > now) return;
            // Files are read oldest first, but a key's lines may come in any order: the newest fetch wins.
            const known = store.fetchedAtOf(key);
            if (known !== undefined && known > fetchedAt) return;
            if (store.setText(key, text, fetchedAt, Math.min(expiresAt, fetchedAt + kinds.ttlMs(key)))) loaded++;
        });
        if (read > 0) logger.debug('cache restored from disk', { read, loaded, entries: store.count });
    } catch (error) {
        logger.warn('cache restore failed; starting with an empty cache', { error: error instanceof Error ? error.name : 'unknown' });
    }
}
