package org.iommuemu.core.api;

import org.iommuemu.core.bits.Bits;

/**
 * One element of a scatter-gather list for {@link IommuDomain#mapSg}: {@code length} bytes of guest physical
 * memory starting {@code offset} bytes into the CPU page (or larger block) at {@code address}, as Linux's
 * {@code struct scatterlist} holds a page, an offset and a length. All three are unsigned.
 *
 * <p>The record checks nothing itself: {@link IommuDomain#mapSg} validates every entry against the domain
 * (alignment to its minimum page size, non-zero length, no wrap past 2^64) and names the index of a bad one.
 *
 * @param address physical address of the CPU page the data is in
 * @param offset byte offset of the data within that page
 * @param length bytes of data
 */
public record SgEntry(long address, long offset, long length) {
    /** An entry of {@code length} bytes at physical address {@code address} (offset 0). */
    public static SgEntry of(long address, long length) {
        return new SgEntry(address, 0, length);
    }

    /** The physical address of the first byte of data: {@code address + offset} (may wrap; mapSg rejects that). */
    public long start() {
        return address + offset;
    }

    @Override
    public String toString() {
        return "SgEntry[" + Bits.hex(address) + (offset == 0 ? "" : " + " + Bits.hex(offset)) + ", "
                + Bits.hex(length) + " bytes]";
    }
}
