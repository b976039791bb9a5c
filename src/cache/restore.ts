import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { EntryKinds } from './kinds.js';
import type { DiskTier, StoredText } from './persistence.js';
import type { EntryStore } from './store.js';

/**
 * Loads the files into the store. The TTL in force now caps each entry, so shortening a TTL takes effect on old
 * entries too. Values stay JSON text until first used, when they are parsed and pass their endpoint's `entry` schema
 * or are dropped (see `EntryStore.setText`). Never rejects: a failure leaves the cache empty.
 */
export async function restore(disk: DiskTier, into: { store: EntryStore; kinds: EntryKinds; clock: Clock; logger: Logger }): Promise<void> {
    const { store, logger } = into;
    let read = 0;
    let loaded = 0;
    const adopt = adopter(into);
    try {
        await disk.load(entry => {
            read++;
            if (adopt(entry)) loaded++;
        });
        if (read > 0) logger.debug('cache restored from disk', { read, loaded, entries: store.count });
    } catch (error) {
        logger.warn('cache restore failed; starting with an empty cache', { error: error instanceof Error ? error.name : 'unknown' });
    }
}

/**
 * What takes an entry read from disk into the store (the restore's, and what other processes append later): the TTL in
 * force caps it, and the newest fetch of a key wins. True when it was taken.
 */
export function adopter(into: { store: EntryStore; kinds: EntryKinds; clock: Clock }): (entry: StoredText) => boolean {
    const { store, kinds, clock } = into;
    return ({ key, fetchedAt, expiresAt, text }) => {
        // A fetchedAt in the future means the clock moved back or the file is not ours: its age cannot be trusted.
        if (fetchedAt > clock.now()) return false;
        // Files are read oldest first, but a key's lines may come in any order: the newest fetch wins. The same fetch
        // again (a snapshot holding what this process has already) changes nothing: the entry keeps its parsed value.
        const known = store.fetchedAtOf(key);
        if (known !== undefined && known >= fetchedAt) return false;
        return store.setText(key, text, fetchedAt, Math.min(expiresAt, fetchedAt + kinds.ttlMs(key)));
    };
}
