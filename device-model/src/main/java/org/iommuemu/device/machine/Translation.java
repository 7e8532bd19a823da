package org.iommuemu.device.machine;

import org.iommuemu.core.bits.Bits;

/**
 * The outcome of translating one DMA access: a mutable holder that the caller owns and reuses, so the
 * translate path allocates nothing.
 *
 * <p>On success, {@link #physicalAddress()} is the output address of the input address, and
 * {@link #contiguousBytes()} how many bytes from there on translate linearly with the same permissions
 * (to the end of the page or block, or unbounded for bypass), so a caller can move a large DMA in a few
 * chunks. On a fault, the kind, the architected code the IOMMU recorded and a description are set.
 */
public final class Translation {
    /** What happened to the access. */
    public enum Outcome {
        /** Translated; physicalAddress and contiguousBytes are valid. */
        OK,
        /** An architected fault; faultType, code and description are valid. */
        FAULT,
        /** The model does not implement the configuration the guest selected; description says what. */
        UNIMPLEMENTED
    }

    /** What gave a successful translation (provenance for the sanitizer and for people). */
    public enum Source {
        /** Not said: bypass, identity, or a device that does not tell. */
        UNKNOWN,
        /** A cached IOTLB entry (or the per-thread copy of one); {@link #entryVa} and the rest describe it. */
        IOTLB,
        /** A walk of the page tables in memory (then cached). */
        WALK
    }

    private Outcome outcome = Outcome.OK;
    private Source source = Source.UNKNOWN;
    private int entryTag;
    private int entrySubTag;
    private long entryVa;
    private int entrySizeLg2;
    private long physicalAddress;
    private long contiguousBytes;
    private FaultType faultType;
    private int code;
    private String description;
    private int walkReads;

    /** Records a successful translation. contiguousBytes is unsigned; -1 means "to the end of the address space". */
    public Translation ok(long physicalAddress, long contiguousBytes) {
        this.outcome = Outcome.OK;
        this.source = Source.UNKNOWN;
        this.walkReads = 0;
        this.physicalAddress = physicalAddress;
        this.contiguousBytes = contiguousBytes;
        this.faultType = null;
        this.code = 0;
        this.description = null;
        return this;
    }

    /**
     * Says that a cached IOTLB entry gave this translation: its tags ({@code tag}: the VMID or VT-d domain id,
     * {@code subTag}: the ASID or PASID, -1 when none) and its input range {@code [va, va + 2^sizeLg2)}.
     */
    public Translation fromIotlb(int tag, int subTag, long va, int sizeLg2) {
        this.source = Source.IOTLB;
        this.entryTag = tag;
        this.entrySubTag = subTag;
        this.entryVa = va;
        this.entrySizeLg2 = sizeLg2;
        return this;
    }

    /** Says that a walk of the tables in memory gave this translation. */
    public Translation fromWalk() {
        this.source = Source.WALK;
        return this;
    }

    /** Sets how many descriptors the walk behind this outcome read from memory (for traces). */
    public Translation walkReads(int reads) {
        this.walkReads = reads;
        return this;
    }

    /** Descriptor reads from memory the walk behind this outcome made; 0 when none or not reported. */
    public int walkReads() {
        return walkReads;
    }

    public Source source() {
        return source;
    }

    /** The serving IOTLB entry's VMID / domain id ({@link Source#IOTLB} only). */
    public int entryTag() {
        return entryTag;
    }

    /** The serving IOTLB entry's ASID / PASID, or -1 ({@link Source#IOTLB} only). */
    public int entrySubTag() {
        return entrySubTag;
    }

    /** The serving IOTLB entry's input base ({@link Source#IOTLB} only). */
    public long entryVa() {
        return entryVa;
    }

    /** log2 of the serving IOTLB entry's size ({@link Source#IOTLB} only). */
    public int entrySizeLg2() {
        return entrySizeLg2;
    }

    /** Records an architected fault. */
    public Translation fault(FaultType type, int code, String description) {
        this.outcome = Outcome.FAULT;
        this.walkReads = 0;
        this.faultType = type;
        this.code = code;
        this.description = description;
        return this;
    }

    /** Records that the model does not implement what the guest configured. */
    public Translation unimplemented(String description) {
        this.outcome = Outcome.UNIMPLEMENTED;
        this.walkReads = 0;
        this.faultType = null;
        this.code = 0;
        this.description = description;
        return this;
    }

    public Outcome outcome() {
        return outcome;
    }

    public boolean isOk() {
        return outcome == Outcome.OK;
    }

    public long physicalAddress() {
        return physicalAddress;
    }

    /** Unsigned byte count; compare with {@link Long#compareUnsigned}. */
    public long contiguousBytes() {
        return contiguousBytes;
    }

    public FaultType faultType() {
        return faultType;
    }

    public int code() {
        return code;
    }

    public String description() {
        return description;
    }

    @Override
    public String toString() {
        return switch (outcome) {
            case OK -> "OK pa=" + Bits.hex(physicalAddress) + " len=" + Long.toUnsignedString(contiguousBytes);
            case FAULT -> "FAULT " + faultType + " code=" + Bits.hex(code) + " " + description;
            case UNIMPLEMENTED -> "UNIMPLEMENTED " + description;
        };
    }
}
