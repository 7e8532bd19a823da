package org.iommuemu.core.api;

import org.iommuemu.core.pgtable.PageTableException;

/**
 * An IOMMU API operation was refused or failed. The {@link #kind()} says why, the message names the values
 * involved (addresses, sizes, page sizes, the domain, the instance, the scatter-gather entry).
 *
 * <p>The API throws this one checked type for everything a caller can get wrong, including what the page
 * table refuses: then the kind is {@link Kind#PAGE_TABLE}, the {@link PageTableException} is the cause and
 * {@link #pageTableKind()} gives its kind. (The table's kinds are not copied into this enum so that there is
 * one list of table errors; callers of the API still see one exception type.)
 *
 * <p>A map or mapSg that throws has changed nothing: what it had mapped before the failure is unmapped
 * again. An unmap that throws has unmapped nothing, except after {@link PageTableException.Kind#MEMORY_FAULT
 * a fault on table memory}, after which the domain has flushed every attached IOTLB.
 */
public final class IommuApiException extends Exception {
    /** Why an operation was refused. */
    public enum Kind {
        /** A null, empty or zero-sized argument, or a range that wraps past 2^64. */
        BAD_ARGUMENT,
        /** An address or size is not a multiple of the domain's minimum page size. */
        MISALIGNED,
        /** The iova range is not inside the domain's aperture. */
        OUT_OF_APERTURE,
        /** The page table refused the operation; see {@link #pageTableKind()} and the cause. */
        PAGE_TABLE,
        /** The instance cannot walk this domain's page table (page sizes). */
        INCOMPATIBLE_INSTANCE,
        /** The instance is attached to the domain already. */
        ALREADY_ATTACHED,
        /** The instance is not attached to the domain. */
        NOT_ATTACHED,
        /** The domain is still attached to an instance (destroy). */
        STILL_ATTACHED,
        /** The domain has been destroyed. */
        DESTROYED
    }

    private final Kind kind;
    private final int sgIndex;

    public IommuApiException(Kind kind, String message) {
        this(kind, message, null, -1);
    }

    public IommuApiException(Kind kind, String message, Throwable cause) {
        this(kind, message, cause, -1);
    }

    /**
     * @param sgIndex index of the scatter-gather entry concerned (the first entry of a coalesced run), or -1
     */
    public IommuApiException(Kind kind, String message, Throwable cause, int sgIndex) {
        super(message, cause);
        this.kind = kind;
        this.sgIndex = sgIndex;
    }

    public Kind kind() {
        return kind;
    }

    /** The page table's reason when {@link #kind()} is {@link Kind#PAGE_TABLE}, else null. */
    public PageTableException.Kind pageTableKind() {
        return getCause() instanceof PageTableException p ? p.kind() : null;
    }

    /**
     * For {@link IommuDomain#mapSg}: the index of the entry that was refused, or of the first entry of the
     * physically contiguous run that failed to map; -1 otherwise.
     */
    public int sgIndex() {
        return sgIndex;
    }
}
