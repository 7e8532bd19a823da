package org.iommuemu.device.sanitize;

/**
 * One access the {@link Sanitizer} caught: a DMA the IOMMU let through that the driver's mappings say it should
 * not have.
 *
 * @param sequence report number, from 1
 * @param kind what was wrong
 * @param iommu the instance that translated the access
 * @param streamId its stream id (requester id)
 * @param substreamId its substream id / PASID, or -1
 * @param iova the first address of the offending chunk of the DMA; for a translated (ATS) request, which carries a
 *     physical address, the iova the unmapped mapping gave that address ({@code TRANSLATED_STALE_ATC}), else the
 *     physical address
 * @param pa the physical address the translation gave for it
 * @param write whether the access wrote
 * @param domain the name of the domain the stream (or substream) is attached to
 * @param causeSequence the sanitizer event (unmap or free) that should have stopped the access, or 0 if none is
 *     known (UNMAPPED_MEMORY of an iova the shadow never saw)
 * @param causeFirst first address of the unmapped iova range or of the freed physical block (-1 if none)
 * @param causeLast last address, inclusive (-1 if none)
 * @param causeNanos when the unmap happened on the domain's flush-queue clock (0 for a free)
 * @param causeFlushed for an unmap: whether its invalidation had completed (strict, or a finished queue flush)
 * @param servedBy what served the translation, as far as it is cheaply known
 * @param detail one line for people
 */
public record SanitizerReport(long sequence, Kind kind, String iommu, int streamId, int substreamId, long iova,
        long pa, boolean write, String domain, long causeSequence, long causeFirst, long causeLast, long causeNanos,
        boolean causeFlushed, String servedBy, String detail) {

    /** What a report is about. The numbers are the bus's {@code SanitizerReportKind}. */
    public enum Kind {
        /** Through a translation the driver had unmapped and whose invalidation had completed. */
        STALE_TRANSLATION(1),
        /** Through a lazily unmapped translation still queued, older than the domain's flush-queue time bound. */
        LAZY_BOUND_EXCEEDED(2),
        /** To a physical page no live mapping of the stream's domain reaches. */
        UNMAPPED_MEMORY(3),
        /** To a page freed back to the driver heap (or handed out again) after the mapping was made. */
        FREED_MEMORY(4),
        /**
         * A translated (ATS) request to a physical page that a mapping of one of the stream's domains had reached,
         * unmapped since with its invalidation, ATC_INV included, completed: the device kept a translation its ATC
         * was told to drop.
         */
        TRANSLATED_STALE_ATC(5),
        /**
         * A translated (ATS) request to a physical page no live mapping of any of the stream's domains reaches, and
         * no unmap of the shadow explains: an address the device was never given.
         */
        TRANSLATED_UNMAPPED_MEMORY(6);

        private final int code;

        Kind(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }
}
