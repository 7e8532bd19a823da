package org.iommuemu.core.pgtable;

/**
 * A page-table operation was refused. Nothing was changed by the operation that throws it (map and unmap
 * are all or nothing). The kind says why; the message names the addresses and sizes involved.
 */
public final class PageTableException extends Exception {
    /** Why an operation was refused. */
    public enum Kind {
        /** The iova, output address or size is not a multiple of the smallest page size. */
        MISALIGNED,
        /** No supported page size fits (alignment and length leave nothing). */
        NO_PAGE_SIZE,
        /** The output address does not fit the format's output width. */
        OA_TOO_WIDE,
        /** The iova range is outside the input range of the table (or not canonical). */
        IOVA_OUT_OF_RANGE,
        /** The protection allows neither reading nor writing. */
        BAD_PROT,
        /** Part of the range is already mapped. */
        ADDRESS_IN_USE,
        /** An unmap starts inside a larger or contiguous mapping. */
        UNMAP_SPLIT,
        /** A size of zero, or a range that wraps past 2^64. */
        BAD_SIZE,
        /** No memory for a new table. */
        NO_MEMORY,
        /** Reading or writing table memory failed (an external abort, e.g. an injected fault). */
        MEMORY_FAULT
    }

    private final Kind kind;

    public PageTableException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public PageTableException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
