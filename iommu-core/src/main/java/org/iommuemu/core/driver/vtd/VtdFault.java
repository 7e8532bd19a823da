package org.iommuemu.core.driver.vtd;

import static org.iommuemu.core.vtd.VtdRegs.*;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.VtdTables;

/**
 * One primary fault as the driver read it from a fault recording register ({@code spec/VTD.md} §4), decoded the
 * way Linux's {@code dmar_fault} does.
 *
 * @param record the fault recording register it was read from (0..NFR)
 * @param address FI: the faulting page address (bits 63:12; the page offset is not recorded)
 * @param sourceId SID: the requester id (bus in bits 15:8, devfn in 7:0)
 * @param reason FR: the fault reason ({@link FaultReason})
 * @param pasidPresent PP: the request carried a PASID
 * @param pasid PV: the PASID, meaningful when {@link #pasidPresent}
 * @param read T: the request was a read (T=1), else a write
 * @param privileged PRIV: a supervisor request
 * @param execute EXE: an execute request
 * @param addressType AT: the request's PCIe address type
 */
public record VtdFault(int record, long address, int sourceId, int reason, boolean pasidPresent, int pasid,
        boolean read, boolean privileged, boolean execute, int addressType) {

    /** Decodes fault recording register {@code record} from its low and high 64-bit halves. */
    public static VtdFault decode(int record, long lo, long hi) {
        return new VtdFault(
                record,
                lo & VtdTables.PTR_MASK,
                (int) Bits.extract(hi, FRCD_HI_SID, 16),
                (int) Bits.extract(hi, FRCD_HI_FR, 8),
                Bits.bit(hi, FRCD_HI_PP),
                (int) Bits.extract(hi, FRCD_HI_PV, 20),
                Bits.bit(hi, FRCD_HI_T),
                Bits.bit(hi, FRCD_HI_PRIV),
                Bits.bit(hi, FRCD_HI_EXE),
                (int) Bits.extract(hi, FRCD_HI_AT, 2));
    }

    /** The fault reason in words. */
    public String reasonText() {
        return FaultReason.describe(reason);
    }

    @Override
    public String toString() {
        return "DMA " + (read ? "read" : "write") + " fault from " + String.format("%02x:%02x.%d",
                VtdTables.bus(sourceId), VtdTables.devfn(sourceId) >>> 3, VtdTables.devfn(sourceId) & 7)
                + (pasidPresent ? " PASID " + pasid : "") + " at " + Bits.hex(address) + ": reason 0x"
                + Integer.toHexString(reason) + " (" + reasonText() + ")";
    }
}
