package org.iommuemu.core.smmuv3;

import static org.iommuemu.core.smmuv3.CommandOp.ATC_INV;
import static org.iommuemu.core.smmuv3.CommandOp.CFGI_CD;
import static org.iommuemu.core.smmuv3.CommandOp.CFGI_CD_ALL;
import static org.iommuemu.core.smmuv3.CommandOp.CFGI_STE;
import static org.iommuemu.core.smmuv3.CommandOp.CFGI_STE_RANGE;
import static org.iommuemu.core.smmuv3.CommandOp.CMD_SYNC;
import static org.iommuemu.core.smmuv3.CommandOp.PREFETCH_ADDR;
import static org.iommuemu.core.smmuv3.CommandOp.PREFETCH_CONFIG;
import static org.iommuemu.core.smmuv3.CommandOp.PRI_RESP;
import static org.iommuemu.core.smmuv3.CommandOp.RESUME;
import static org.iommuemu.core.smmuv3.CommandOp.STALL_TERM;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_EL2_ALL;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_EL2_ASID;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_EL2_VA;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_EL2_VAA;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_EL3_ALL;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_EL3_VA;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_NH_ALL;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_NH_ASID;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_NH_VA;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_NH_VAA;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_NSNH_ALL;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_S12_VMALL;
import static org.iommuemu.core.smmuv3.CommandOp.TLBI_S2_IPA;

import java.util.Arrays;
import org.iommuemu.core.bits.Bits;

/**
 * A command-queue entry: 16 bytes, two little-endian 64-bit words ({@code spec/SMMUV3.md} §7; Arm IHI0070
 * chapter 4, "Commands"), decoded into the union of every command's fields.
 *
 * <p><b>Layouts.</b> The opcode (dw0[7:0]) decides which fields exist: dw0[31:12] is the SubstreamID of
 * CFGI_CD but NUM and SCALE of a TLBI, CS/MSH/MSIAttr of CMD_SYNC; dw0[63:32] is a StreamID, a VMID and ASID,
 * or MSIData. {@link #decode} reads the fields of the opcode's layout and leaves every other component 0;
 * bits outside the layout (RES0) are dropped. The canonical constructor rejects a nonzero component the
 * opcode has no field for, and a value that does not fit its field, so {@code decode(x.dw0(), x.dw1())}
 * equals {@code x} for every command that can be constructed. An unknown opcode has no fields at all.
 *
 * <p>Field positions, all confirmed by Linux's {@code arm-smmu-v3.h} unless marked: SSec dw0[10]
 * (PREFETCH_*, CFGI_*, RESUME, STALL_TERM); SSV dw0[11] (PREFETCH_*, ATC_INV, PRI_RESP); SubstreamID
 * dw0[31:12]; StreamID dw0[63:32]; VMID dw0[47:32]; ASID dw0[63:48]; NUM dw0[16:12]; SCALE dw0[24:20];
 * Global dw0[9]; RESUME's action dw0[13:12]; CMD_SYNC CS dw0[13:12], MSH dw0[23:22], MSIAttr dw0[27:24],
 * MSIData dw0[63:32]; Leaf dw1[0]; Range dw1[4:0]; TTL dw1[9:8]; TG dw1[11:10]; VA dw1[63:12]; IPA
 * dw1[51:12]; PREFETCH_ADDR Size dw1[4:0] and Addr dw1[63:12] (Stride and NS not modelled); ATC_INV Size
 * dw1[5:0] and Addr dw1[63:12]; PRI_RESP PRGI dw1[8:0] and Resp dw1[13:12]; RESUME STAG dw1[15:0];
 * CMD_SYNC MSIAddr dw1[51:2]. TLBI_EL3_VA (unverified in the fact sheet) is given the layout of
 * TLBI_EL2_VAA: NUM, SCALE, Leaf, TTL, TG, VA.
 *
 * <p><b>Hot path.</b> {@link #decode} allocates only the record. Static accessors on raw words
 * ({@link #opcode(long)}, {@link #streamId(long)}, {@link #address(long, long)}…) and
 * {@link #check(long, long, Features)} allocate nothing.
 *
 * @param opcode      dw0[7:0]
 * @param ssec        SSec: the command targets a secure stream
 * @param ssv         SSV: {@code substreamId} is valid
 * @param substreamId SubstreamID (20 bits)
 * @param streamId    StreamID (32 bits, unsigned)
 * @param vmid        VMID (16 bits)
 * @param asid        ASID (16 bits)
 * @param num         NUM (5 bits): a range TLBI covers (NUM + 1)·2^SCALE granules
 * @param scale       SCALE (5 bits)
 * @param leaf        Leaf: only last-level entries need invalidating (TLBI, CFGI_STE, CFGI_CD)
 * @param ttl         TTL (2 bits): level hint of a TLBI (Arm level 1..3, 0 = no hint)
 * @param tg          TG (2 bits): granule of a range TLBI, 0 = not a range ({@link Encodings#granuleLg2ForRangeTg})
 * @param address     the address of TLBI (VA or IPA), ATC_INV and PREFETCH_ADDR, in place (4 KB aligned)
 * @param range       CFGI_STE_RANGE Range (5 bits): 2^(Range+1) StreamIDs
 * @param size        ATC_INV Size (6 bits: 2^Size 4 KB pages) or PREFETCH_ADDR Size (5 bits)
 * @param global      ATC_INV Global: all substreams
 * @param cs          CMD_SYNC CS: {@link #CS_NONE}, {@link #CS_IRQ}, {@link #CS_SEV}
 * @param msh         CMD_SYNC MSH: shareability of the MSI write
 * @param msiAttr     CMD_SYNC MSIAttr: memory type of the MSI write
 * @param msiData     CMD_SYNC MSIData (32 bits, unsigned)
 * @param msiAddr     CMD_SYNC MSIAddr, in place (4-byte aligned, below 2^52)
 * @param resp        PRI_RESP Resp ({@link #PRI_RESP_DENY}…) or RESUME action ({@link #RESUME_TERMINATE}…)
 * @param stag        RESUME STAG (16 bits)
 * @param prgi        PRI_RESP PRGI: page request group index (9 bits)
 */
public record Command(
        int opcode,
        boolean ssec,
        boolean ssv,
        int substreamId,
        int streamId,
        int vmid,
        int asid,
        int num,
        int scale,
        boolean leaf,
        int ttl,
        int tg,
        long address,
        int range,
        int size,
        boolean global,
        int cs,
        int msh,
        int msiAttr,
        int msiData,
        long msiAddr,
        int resp,
        int stag,
        int prgi) {

    /** Size of a command in bytes. */
    public static final int SIZE = 16;
    /** Number of 64-bit words in a command. */
    public static final int DWORDS = 2;

    /** CMD_SYNC CS: no signal; software polls CONS. */
    public static final int CS_NONE = 0;
    /** CMD_SYNC CS: signal completion with an interrupt (the MSI write when MSIs are supported). */
    public static final int CS_IRQ = 1;
    /** CMD_SYNC CS: signal completion with a send-event. */
    public static final int CS_SEV = 2;

    /** PRI_RESP Resp: response "invalid request" (deny). */
    public static final int PRI_RESP_DENY = 0;
    /** PRI_RESP Resp: response failure. */
    public static final int PRI_RESP_FAIL = 1;
    /** PRI_RESP Resp: success. */
    public static final int PRI_RESP_SUCCESS = 2;

    /** RESUME action: terminate the stalled transaction. */
    public static final int RESUME_TERMINATE = 0;
    /** RESUME action (Ac): retry it. */
    public static final int RESUME_RETRY = 1;
    /** RESUME action (Ab): abort it. */
    public static final int RESUME_ABORT = 2;

    /** CFGI_STE_RANGE Range of CFGI_ALL: 2^32 StreamIDs. */
    public static final int CFGI_ALL_RANGE = 31;
    /** ATC_INV Size Linux uses, with address 0, to invalidate a device's whole ATC. */
    public static final int ATC_INV_SIZE_ALL = 52;
    /** log2 of the page ATC_INV and PREFETCH_ADDR sizes count in. */
    public static final int ATC_PAGE_LG2 = 12;

    public static final BitField OPCODE = BitField.of("opcode", 0, 7, 0);
    public static final BitField GLOBAL = BitField.flag("Global", 0, 9);
    public static final BitField SSEC = BitField.flag("SSec", 0, 10);
    public static final BitField SSV = BitField.flag("SSV", 0, 11);
    public static final BitField SSID = BitField.of("SubstreamID", 0, 31, 12);
    public static final BitField SID = BitField.of("StreamID", 0, 63, 32);
    public static final BitField NUM = BitField.of("NUM", 0, 16, 12);
    public static final BitField SCALE = BitField.of("SCALE", 0, 24, 20);
    public static final BitField VMID = BitField.of("VMID", 0, 47, 32);
    public static final BitField ASID = BitField.of("ASID", 0, 63, 48);
    public static final BitField RESUME_ACTION = BitField.of("RESUME Resp", 0, 13, 12);
    public static final BitField SYNC_CS = BitField.of("CS", 0, 13, 12);
    public static final BitField SYNC_MSH = BitField.of("MSH", 0, 23, 22);
    public static final BitField SYNC_MSIATTR = BitField.of("MSIAttr", 0, 27, 24);
    public static final BitField SYNC_MSIDATA = BitField.of("MSIData", 0, 63, 32);

    public static final BitField LEAF = BitField.flag("Leaf", 1, 0);
    public static final BitField RANGE = BitField.of("Range", 1, 4, 0);
    public static final BitField TTL = BitField.of("TTL", 1, 9, 8);
    public static final BitField TG = BitField.of("TG", 1, 11, 10);
    public static final BitField VA = BitField.of("VA", 1, 63, 12);
    public static final BitField IPA = BitField.of("IPA", 1, 51, 12);
    public static final BitField PREFETCH_SIZE = BitField.of("PREFETCH Size", 1, 4, 0);
    public static final BitField PREFETCH_ADDRESS = BitField.of("PREFETCH Addr", 1, 63, 12);
    public static final BitField ATC_SIZE = BitField.of("ATC_INV Size", 1, 5, 0);
    public static final BitField ATC_ADDRESS = BitField.of("ATC_INV Addr", 1, 63, 12);
    public static final BitField PRI_PRGI = BitField.of("PRGI", 1, 8, 0);
    public static final BitField PRI_RESPONSE = BitField.of("PRI Resp", 1, 13, 12);
    public static final BitField RESUME_STAG = BitField.of("STAG", 1, 15, 0);
    public static final BitField SYNC_MSIADDR = BitField.of("MSIAddr", 1, 51, 2);

    // ------------------------------------------------------------------ per-opcode layouts

    /** The fields one opcode has; {@code null} where it has none. */
    private static final class Layout {
        BitField ssec;
        BitField ssv;
        BitField ssid;
        BitField sid;
        BitField vmid;
        BitField asid;
        BitField num;
        BitField scale;
        BitField leaf;
        BitField ttl;
        BitField tg;
        BitField address;
        BitField range;
        BitField size;
        BitField global;
        BitField cs;
        BitField msh;
        BitField msiAttr;
        BitField msiData;
        BitField msiAddr;
        BitField resp;
        BitField stag;
        BitField prgi;
    }

    private static final Layout NONE = new Layout();
    private static final Layout[] LAYOUTS = new Layout[256];

    static {
        Arrays.fill(LAYOUTS, NONE);
        Layout l;

        l = layout(PREFETCH_CONFIG);
        l.ssec = SSEC;
        l.ssv = SSV;
        l.ssid = SSID;
        l.sid = SID;

        l = layout(PREFETCH_ADDR);
        l.ssec = SSEC;
        l.ssv = SSV;
        l.ssid = SSID;
        l.sid = SID;
        l.size = PREFETCH_SIZE;
        l.address = PREFETCH_ADDRESS;

        l = layout(CFGI_STE);
        l.ssec = SSEC;
        l.sid = SID;
        l.leaf = LEAF;

        l = layout(CFGI_STE_RANGE);
        l.ssec = SSEC;
        l.sid = SID;
        l.range = RANGE;

        l = layout(CFGI_CD);
        l.ssec = SSEC;
        l.ssid = SSID;
        l.sid = SID;
        l.leaf = LEAF;

        l = layout(CFGI_CD_ALL);
        l.ssec = SSEC;
        l.sid = SID;

        layout(TLBI_NH_ALL).vmid = VMID;

        l = layout(TLBI_NH_ASID);
        l.vmid = VMID;
        l.asid = ASID;

        tlbiByAddress(layout(TLBI_NH_VA), VA).vmid = VMID;
        LAYOUTS[TLBI_NH_VA].asid = ASID;
        tlbiByAddress(layout(TLBI_NH_VAA), VA).vmid = VMID;

        layout(TLBI_EL3_ALL);
        tlbiByAddress(layout(TLBI_EL3_VA), VA);

        layout(TLBI_EL2_ALL);
        layout(TLBI_EL2_ASID).asid = ASID;
        tlbiByAddress(layout(TLBI_EL2_VA), VA).asid = ASID;
        tlbiByAddress(layout(TLBI_EL2_VAA), VA);

        layout(TLBI_S12_VMALL).vmid = VMID;
        tlbiByAddress(layout(TLBI_S2_IPA), IPA).vmid = VMID;

        layout(TLBI_NSNH_ALL);

        l = layout(ATC_INV);
        l.global = GLOBAL;
        l.ssv = SSV;
        l.ssid = SSID;
        l.sid = SID;
        l.size = ATC_SIZE;
        l.address = ATC_ADDRESS;

        l = layout(PRI_RESP);
        l.ssv = SSV;
        l.ssid = SSID;
        l.sid = SID;
        l.prgi = PRI_PRGI;
        l.resp = PRI_RESPONSE;

        l = layout(RESUME);
        l.ssec = SSEC;
        l.resp = RESUME_ACTION;
        l.sid = SID;
        l.stag = RESUME_STAG;

        l = layout(STALL_TERM);
        l.ssec = SSEC;
        l.sid = SID;

        l = layout(CMD_SYNC);
        l.cs = SYNC_CS;
        l.msh = SYNC_MSH;
        l.msiAttr = SYNC_MSIATTR;
        l.msiData = SYNC_MSIDATA;
        l.msiAddr = SYNC_MSIADDR;
    }

    private static Layout layout(int opcode) {
        Layout l = new Layout();
        LAYOUTS[opcode] = l;
        return l;
    }

    private static Layout tlbiByAddress(Layout l, BitField address) {
        l.num = NUM;
        l.scale = SCALE;
        l.leaf = LEAF;
        l.ttl = TTL;
        l.tg = TG;
        l.address = address;
        return l;
    }

    private static Layout layoutOf(int opcode) {
        return LAYOUTS[opcode & 0xFF];
    }

    // ------------------------------------------------------------------ construction

    /**
     * Rejects a value that does not fit its field, and a nonzero value for a field the opcode does not
     * have ({@link IllegalArgumentException} naming both).
     */
    public Command {
        OPCODE.checkValue(opcode);
        Layout l = layoutOf(opcode);
        checkFlag(l.ssec, "SSec", ssec, opcode);
        checkFlag(l.ssv, "SSV", ssv, opcode);
        checkValue(l.ssid, "SubstreamID", Integer.toUnsignedLong(substreamId), opcode);
        checkValue(l.sid, "StreamID", Integer.toUnsignedLong(streamId), opcode);
        checkValue(l.vmid, "VMID", vmid, opcode);
        checkValue(l.asid, "ASID", asid, opcode);
        checkValue(l.num, "NUM", num, opcode);
        checkValue(l.scale, "SCALE", scale, opcode);
        checkFlag(l.leaf, "Leaf", leaf, opcode);
        checkValue(l.ttl, "TTL", ttl, opcode);
        checkValue(l.tg, "TG", tg, opcode);
        checkAddress(l.address, "address", address, opcode);
        checkValue(l.range, "Range", range, opcode);
        checkValue(l.size, "Size", size, opcode);
        checkFlag(l.global, "Global", global, opcode);
        checkValue(l.cs, "CS", cs, opcode);
        checkValue(l.msh, "MSH", msh, opcode);
        checkValue(l.msiAttr, "MSIAttr", msiAttr, opcode);
        checkValue(l.msiData, "MSIData", Integer.toUnsignedLong(msiData), opcode);
        checkAddress(l.msiAddr, "MSIAddr", msiAddr, opcode);
        checkValue(l.resp, "Resp", resp, opcode);
        checkValue(l.stag, "STAG", stag, opcode);
        checkValue(l.prgi, "PRGI", prgi, opcode);
    }

    private static void checkValue(BitField f, String name, long value, int opcode) {
        if (f == null) {
            if (value != 0) {
                throw new IllegalArgumentException(
                        CommandOp.name(opcode) + " has no " + name + " field, yet " + name + " = " + Bits.hex(value));
            }
        } else {
            f.checkValue(value);
        }
    }

    private static void checkFlag(BitField f, String name, boolean value, int opcode) {
        if (f == null && value) {
            throw new IllegalArgumentException(CommandOp.name(opcode) + " has no " + name + " field, yet it is set");
        }
    }

    private static void checkAddress(BitField f, String name, long address, int opcode) {
        if (f == null) {
            checkValue(null, name, address, opcode);
        } else {
            f.checkAddress(address);
        }
    }

    /** Decodes a command from its two words; allocates only the record. */
    public static Command decode(long dw0, long dw1) {
        int opcode = OPCODE.getInt(dw0);
        Layout l = layoutOf(opcode);
        return new Command(
                opcode,
                flag(l.ssec, dw0, dw1),
                flag(l.ssv, dw0, dw1),
                (int) value(l.ssid, dw0, dw1),
                (int) value(l.sid, dw0, dw1),
                (int) value(l.vmid, dw0, dw1),
                (int) value(l.asid, dw0, dw1),
                (int) value(l.num, dw0, dw1),
                (int) value(l.scale, dw0, dw1),
                flag(l.leaf, dw0, dw1),
                (int) value(l.ttl, dw0, dw1),
                (int) value(l.tg, dw0, dw1),
                inPlace(l.address, dw0, dw1),
                (int) value(l.range, dw0, dw1),
                (int) value(l.size, dw0, dw1),
                flag(l.global, dw0, dw1),
                (int) value(l.cs, dw0, dw1),
                (int) value(l.msh, dw0, dw1),
                (int) value(l.msiAttr, dw0, dw1),
                (int) value(l.msiData, dw0, dw1),
                inPlace(l.msiAddr, dw0, dw1),
                (int) value(l.resp, dw0, dw1),
                (int) value(l.stag, dw0, dw1),
                (int) value(l.prgi, dw0, dw1));
    }

    /** Decodes a command from {@code words[offset]} and {@code words[offset + 1]}. */
    public static Command decode(long[] words, int offset) {
        return decode(words[offset], words[offset + 1]);
    }

    private static long word(BitField f, long dw0, long dw1) {
        return f.word() == 0 ? dw0 : dw1;
    }

    private static long value(BitField f, long dw0, long dw1) {
        return f == null ? 0 : f.get(word(f, dw0, dw1));
    }

    private static boolean flag(BitField f, long dw0, long dw1) {
        return f != null && f.isSet(word(f, dw0, dw1));
    }

    private static long inPlace(BitField f, long dw0, long dw1) {
        return f == null ? 0 : f.address(word(f, dw0, dw1));
    }

    /** Word 0 of the command. */
    public long dw0() {
        return encodeWord(0);
    }

    /** Word 1 of the command. */
    public long dw1() {
        return encodeWord(1);
    }

    /** Writes the two words into {@code into[offset]} and {@code into[offset + 1]}. */
    public void encode(long[] into, int offset) {
        into[offset] = dw0();
        into[offset + 1] = dw1();
    }

    /** The two words. */
    public long[] encode() {
        return new long[] {dw0(), dw1()};
    }

    private long encodeWord(int word) {
        Layout l = layoutOf(opcode);
        long w = word == 0 ? OPCODE.put(0, opcode) : 0;
        w = put(l.ssec, word, w, ssec ? 1 : 0);
        w = put(l.ssv, word, w, ssv ? 1 : 0);
        w = put(l.ssid, word, w, Integer.toUnsignedLong(substreamId));
        w = put(l.sid, word, w, Integer.toUnsignedLong(streamId));
        w = put(l.vmid, word, w, vmid);
        w = put(l.asid, word, w, asid);
        w = put(l.num, word, w, num);
        w = put(l.scale, word, w, scale);
        w = put(l.leaf, word, w, leaf ? 1 : 0);
        w = put(l.ttl, word, w, ttl);
        w = put(l.tg, word, w, tg);
        w = putAddress(l.address, word, w, address);
        w = put(l.range, word, w, range);
        w = put(l.size, word, w, size);
        w = put(l.global, word, w, global ? 1 : 0);
        w = put(l.cs, word, w, cs);
        w = put(l.msh, word, w, msh);
        w = put(l.msiAttr, word, w, msiAttr);
        w = put(l.msiData, word, w, Integer.toUnsignedLong(msiData));
        w = putAddress(l.msiAddr, word, w, msiAddr);
        w = put(l.resp, word, w, resp);
        w = put(l.stag, word, w, stag);
        return put(l.prgi, word, w, prgi);
    }

    private static long put(BitField f, int word, long w, long value) {
        return f == null || f.word() != word ? w : f.put(w, value);
    }

    private static long putAddress(BitField f, int word, long w, long address) {
        return f == null || f.word() != word ? w : f.putAddress(w, address);
    }

    /**
     * The bits of word {@code word} (0 or 1) that the layout of {@code opcode} covers, opcode included;
     * for an unknown opcode only the opcode field.
     */
    public static long definedMask(int opcode, int word) {
        Layout l = layoutOf(opcode);
        long m = word == 0 ? OPCODE.mask() : 0;
        for (BitField f : new BitField[] {
            l.ssec, l.ssv, l.ssid, l.sid, l.vmid, l.asid, l.num, l.scale, l.leaf, l.ttl, l.tg, l.address, l.range,
            l.size, l.global, l.cs, l.msh, l.msiAttr, l.msiData, l.msiAddr, l.resp, l.stag, l.prgi
        }) {
            if (f != null && f.word() == word) {
                m |= f.mask();
            }
        }
        return m;
    }

    // ------------------------------------------------------------------ zero-allocation accessors on raw words

    /** The opcode of a command's word 0. */
    public static int opcode(long dw0) {
        return OPCODE.getInt(dw0);
    }

    /** StreamID, dw0[63:32] (for the opcodes that have one). */
    public static int streamId(long dw0) {
        return SID.getInt(dw0);
    }

    /** SubstreamID, dw0[31:12] (for the opcodes that have one). */
    public static int substreamId(long dw0) {
        return SSID.getInt(dw0);
    }

    /** SSV, dw0[11]. */
    public static boolean ssv(long dw0) {
        return SSV.isSet(dw0);
    }

    /** SSec, dw0[10]. */
    public static boolean ssec(long dw0) {
        return SSEC.isSet(dw0);
    }

    /** VMID, dw0[47:32] (TLBI_NH_*, TLBI_S12_VMALL, TLBI_S2_IPA). */
    public static int vmid(long dw0) {
        return VMID.getInt(dw0);
    }

    /** ASID, dw0[63:48] (TLBI_NH_ASID, TLBI_NH_VA, TLBI_EL2_ASID, TLBI_EL2_VA). */
    public static int asid(long dw0) {
        return ASID.getInt(dw0);
    }

    /** NUM, dw0[16:12] (TLBI by address). */
    public static int num(long dw0) {
        return NUM.getInt(dw0);
    }

    /** SCALE, dw0[24:20] (TLBI by address). */
    public static int scale(long dw0) {
        return SCALE.getInt(dw0);
    }

    /** Leaf, dw1[0] (TLBI by address, CFGI_STE, CFGI_CD). */
    public static boolean leaf(long dw1) {
        return LEAF.isSet(dw1);
    }

    /** TTL, dw1[9:8] (TLBI by address). */
    public static int ttl(long dw1) {
        return TTL.getInt(dw1);
    }

    /** TG, dw1[11:10] (TLBI by address). */
    public static int tg(long dw1) {
        return TG.getInt(dw1);
    }

    /** CFGI_STE_RANGE Range, dw1[4:0]. */
    public static int range(long dw1) {
        return RANGE.getInt(dw1);
    }

    /** CMD_SYNC CS, dw0[13:12]. */
    public static int syncCs(long dw0) {
        return SYNC_CS.getInt(dw0);
    }

    /** CMD_SYNC MSIData, dw0[63:32]. */
    public static int syncMsiData(long dw0) {
        return SYNC_MSIDATA.getInt(dw0);
    }

    /** CMD_SYNC MSIAddr, dw1[51:2], in place. */
    public static long syncMsiAddr(long dw1) {
        return SYNC_MSIADDR.address(dw1);
    }

    /**
     * The address field of the command's layout, in place: VA dw1[63:12] or IPA dw1[51:12] of a TLBI,
     * ATC_INV or PREFETCH_ADDR Addr dw1[63:12]; 0 for opcodes without one.
     */
    public static long address(long dw0, long dw1) {
        BitField f = layoutOf(opcode(dw0)).address;
        return f == null ? 0 : f.address(dw1);
    }

    /** The Size field of ATC_INV (dw1[5:0]) or PREFETCH_ADDR (dw1[4:0]); 0 for other opcodes. */
    public static int size(long dw0, long dw1) {
        BitField f = layoutOf(opcode(dw0)).size;
        return f == null ? 0 : f.getInt(dw1);
    }

    // ------------------------------------------------------------------ meaning

    /** Whether this is CFGI_ALL: CFGI_STE_RANGE with Range = 31. */
    public boolean isCfgiAll() {
        return opcode == CFGI_STE_RANGE && range == CFGI_ALL_RANGE;
    }

    /** log2 of the number of StreamIDs a CFGI_STE_RANGE invalidates: Range + 1 (32 for CFGI_ALL). */
    public int steRangeLg2() {
        return range + 1;
    }

    /** The first StreamID a CFGI_STE_RANGE invalidates: StreamID aligned down to 2^(Range+1). */
    public int steRangeFirst() {
        return steRangeFirst(streamId, range);
    }

    /** The first StreamID CFGI_STE_RANGE invalidates for a StreamID and Range (allocation-free). */
    public static int steRangeFirst(int streamId, int range) {
        return (int) Bits.alignDown(Integer.toUnsignedLong(streamId), range + 1);
    }

    /** Whether this TLBI is a range invalidation (TG ≠ 0; needs IDR3.RIL). */
    public boolean isRange() {
        return tg != 0;
    }

    /**
     * Bytes a range TLBI invalidates: (NUM + 1)·2^SCALE granules of 2^(10 + 2·TG) bytes (§7; Linux
     * {@code __arm_smmu_tlb_inv_range}, QEMU {@code smmuv3_range_inval}); 0 for TG = 0, where the command
     * names a single address and the size is that of whatever leaf maps it. At most 32·2^31·2^16 = 2^52.
     */
    public static long tlbiRangeLength(int tg, int num, int scale) {
        int granuleLg2 = Encodings.granuleLg2ForRangeTg(tg);
        if (granuleLg2 < 0) {
            return 0;
        }
        return (num + 1L) << (scale + granuleLg2);
    }

    /**
     * What a TLBI by address invalidates. For a range (TG ≠ 0) the span starts at the address and is
     * {@link #tlbiRangeLength} long, cut short at 2^64 if it would run past; for TG = 0 the length is 0 and
     * the command invalidates the entries mapping the one address, whatever their size.
     *
     * @param address     first byte (VA or IPA)
     * @param length      bytes from {@code address}; 0 for a single-address invalidation
     * @param granuleLg2  log2 of the granule TG names; -1 for TG = 0
     * @param levelHint   TTL: the Arm level (1..3) of the entries, a hint; 0 = no hint
     * @param leaf        only last-level entries need invalidating (walk caches may be kept)
     */
    public record TlbiRange(long address, long length, int granuleLg2, int levelHint, boolean leaf) {
        /** Whether this names a single address rather than a range. */
        public boolean isSingleAddress() {
            return granuleLg2 < 0;
        }
    }

    /** The span of this TLBI by address ({@link TlbiRange}); meaningful for {@link CommandOp#isTlbiByAddress} opcodes. */
    public TlbiRange tlbiRange() {
        long length = tlbiRangeLength(tg, num, scale);
        if (length != 0 && Bits.rangeOverflows(address, length)) {
            length = -address; // up to 2^64 exactly
        }
        return new TlbiRange(address, length, Encodings.granuleLg2ForRangeTg(tg), ttl, leaf);
    }

    /**
     * log2 of the span an ATC_INV invalidates: 2^Size pages of 4 KB, capped at 64 (Size ≥ 52, which Linux
     * uses with address 0 for "everything", covers the whole 64-bit space).
     */
    public static int atcSpanLg2(int size) {
        return Math.min(size + ATC_PAGE_LG2, Long.SIZE);
    }

    /** The first address an ATC_INV invalidates: Addr aligned down to its span (0 for a 2^64 span). */
    public static long atcStart(long address, int size) {
        int lg2 = atcSpanLg2(size);
        return lg2 >= Long.SIZE ? 0 : Bits.alignDown(address, lg2);
    }

    /** This ATC_INV's span ({@link #atcSpanLg2(int)}). */
    public int atcSpanLg2() {
        return atcSpanLg2(size);
    }

    /** This ATC_INV's first address ({@link #atcStart(long, int)}). */
    public long atcStart() {
        return atcStart(address, size);
    }

    // ------------------------------------------------------------------ legality

    /**
     * What the SMMU implements, as far as command legality depends on it (IDR0/IDR3 bits, §2).
     *
     * @param s1  IDR0.S1P: stage-1 translation
     * @param s2  IDR0.S2P: stage-2 translation
     * @param ril IDR3.RIL: range invalidation
     * @param ats IDR0.ATS
     * @param pri IDR0.PRI
     * @param sev IDR0.SEV: CMD_SYNC may signal with a send-event
     * @param msi IDR0.MSI: CMD_SYNC CS=IRQ completes with an MSI write
     * @param hyp IDR0.HYP: the EL2 translation regime (TLBI_EL2_*)
     */
    public record Features(boolean s1, boolean s2, boolean ril, boolean ats, boolean pri, boolean sev, boolean msi,
            boolean hyp) {
        /** Everything implemented. */
        public static final Features ALL = new Features(true, true, true, true, true, true, true, true);

        private static final int IDR0_S2P = 0;
        private static final int IDR0_S1P = 1;
        private static final int IDR0_HYP = 9;
        private static final int IDR0_ATS = 10;
        private static final int IDR0_MSI = 13;
        private static final int IDR0_SEV = 14;
        private static final int IDR0_PRI = 16;
        private static final int IDR3_RIL = 10;

        /** The features an SMMU's IDR0 and IDR3 advertise. */
        public static Features fromIdRegisters(int idr0, int idr3) {
            return new Features(
                    Bits.bit(idr0, IDR0_S1P),
                    Bits.bit(idr0, IDR0_S2P),
                    Bits.bit(idr3, IDR3_RIL),
                    Bits.bit(idr0, IDR0_ATS),
                    Bits.bit(idr0, IDR0_PRI),
                    Bits.bit(idr0, IDR0_SEV),
                    Bits.bit(idr0, IDR0_MSI),
                    Bits.bit(idr0, IDR0_HYP));
        }
    }

    /** Reason: the opcode is none of the architected ones (§7; QEMU's default case). */
    public static final String ILL_UNKNOWN_OPCODE = "unknown opcode";
    /** Reason: SSec = 1 on the non-secure command queue (QEMU for CFGI_*; extended to every command with SSec). */
    public static final String ILL_SSEC = "SSec=1 on the non-secure command queue";
    /** Reason: an EL3 invalidation on the non-secure command queue (the architecture; unverified). */
    public static final String ILL_EL3 = "TLBI_EL3_* on the non-secure command queue";
    /** Reason: an EL2 invalidation without IDR0.HYP (the architecture; unverified, QEMU ignores these). */
    public static final String ILL_NO_HYP = "TLBI_EL2_* without IDR0.HYP";
    /** Reason: a stage-1 invalidation without IDR0.S1P (QEMU). */
    public static final String ILL_NO_S1 = "TLBI_NH_* without stage 1 (IDR0.S1P)";
    /** Reason: a stage-2 invalidation without IDR0.S2P (QEMU). */
    public static final String ILL_NO_S2 = "TLBI_S12_VMALL/TLBI_S2_IPA without stage 2 (IDR0.S2P)";
    /** Reason: a range TLBI (TG ≠ 0) without IDR3.RIL (the architecture; unverified, QEMU performs the range). */
    public static final String ILL_NO_RIL = "range TLBI (TG!=0) without IDR3.RIL";
    /** Reason: ATC_INV without IDR0.ATS (the architecture; unverified, QEMU ignores ATC_INV). */
    public static final String ILL_NO_ATS = "ATC_INV without IDR0.ATS";
    /** Reason: PRI_RESP without IDR0.PRI (the architecture; unverified, QEMU ignores PRI_RESP). */
    public static final String ILL_NO_PRI = "PRI_RESP without IDR0.PRI";
    /** Reason: CMD_SYNC with the reserved CS = 0b11 (Linux names 0–2 only; QEMU reads bit 0 as IRQ). */
    public static final String ILL_SYNC_CS = "CMD_SYNC with reserved CS=0b11";

    /**
     * Whether the command is legal on the non-secure command queue of an SMMU with {@code features}:
     * {@code null} when it is, otherwise the reason (one of the {@code ILL_*} constants) for answering
     * CERROR_ILL. Allocation-free; checks the raw words, so RES0 bits are not looked at. Rules, in order:
     *
     * <ol>
     *   <li>{@link #ILL_UNKNOWN_OPCODE}: an opcode not in §7's table (QEMU, the architecture).</li>
     *   <li>{@link #ILL_SSEC}: SSec = 1 on a command with an SSec field; this emulator has no secure side.
     *       QEMU rejects it for CFGI_*; applying it to PREFETCH_*, RESUME and STALL_TERM is this class's
     *       choice.</li>
     *   <li>{@link #ILL_EL3}: TLBI_EL3_ALL / TLBI_EL3_VA, secure-only (the architecture, from memory:
     *       unverified; QEMU treats them as no-ops).</li>
     *   <li>{@link #ILL_NO_HYP}: TLBI_EL2_* without HYP (unverified; QEMU treats them as no-ops).</li>
     *   <li>{@link #ILL_NO_S1}: TLBI_NH_ALL/ASID/VA/VAA without S1P (QEMU).</li>
     *   <li>{@link #ILL_NO_S2}: TLBI_S12_VMALL / TLBI_S2_IPA without S2P (QEMU).</li>
     *   <li>{@link #ILL_NO_RIL}: a TLBI by address with TG ≠ 0 without RIL (unverified; QEMU does not check,
     *       Linux never sends one).</li>
     *   <li>{@link #ILL_NO_ATS}, {@link #ILL_NO_PRI}: ATC_INV without ATS, PRI_RESP without PRI
     *       (unverified; QEMU treats both as no-ops).</li>
     *   <li>{@link #ILL_SYNC_CS}: CMD_SYNC CS = 0b11.</li>
     * </ol>
     *
     * <p>Deliberately not rules: CS = SEV without IDR0.SEV and CS = IRQ without IDR0.MSI (Linux sends CS =
     * SEV whenever it does not poll an MSI, QEMU advertises no SEV and accepts it; see {@link #syncSignal});
     * TG = 0 with NUM, SCALE or TTL nonzero (those fields are then ignored, as QEMU does); a TTL hint that
     * names a level the granule cannot have a leaf at (Arm treats a wrong hint as a hint, QEMU does not check
     * and Linux never writes one); RESUME / PRI_RESP response 0b11.
     */
    public static String check(long dw0, long dw1, Features features) {
        int opcode = opcode(dw0);
        if (!CommandOp.isKnown(opcode)) {
            return ILL_UNKNOWN_OPCODE;
        }
        if (layoutOf(opcode).ssec != null && ssec(dw0)) {
            return ILL_SSEC;
        }
        switch (opcode) {
            case TLBI_EL3_ALL:
            case TLBI_EL3_VA:
                return ILL_EL3;
            case TLBI_EL2_ALL:
            case TLBI_EL2_ASID:
            case TLBI_EL2_VA:
            case TLBI_EL2_VAA:
                if (!features.hyp()) {
                    return ILL_NO_HYP;
                }
                break;
            case TLBI_NH_ALL:
            case TLBI_NH_ASID:
            case TLBI_NH_VA:
            case TLBI_NH_VAA:
                if (!features.s1()) {
                    return ILL_NO_S1;
                }
                break;
            case TLBI_S12_VMALL:
            case TLBI_S2_IPA:
                if (!features.s2()) {
                    return ILL_NO_S2;
                }
                break;
            case ATC_INV:
                if (!features.ats()) {
                    return ILL_NO_ATS;
                }
                break;
            case PRI_RESP:
                if (!features.pri()) {
                    return ILL_NO_PRI;
                }
                break;
            case CMD_SYNC:
                if (syncCs(dw0) == CS_RESERVED) {
                    return ILL_SYNC_CS;
                }
                break;
            default:
                break;
        }
        if (CommandOp.isTlbiByAddress(opcode) && tg(dw1) != 0 && !features.ril()) {
            return ILL_NO_RIL;
        }
        return null;
    }

    private static final int CS_RESERVED = 3;

    /** {@link #check(long, long, Features)} on this command's words. */
    public String check(Features features) {
        return check(dw0(), dw1(), features);
    }

    /** How a CMD_SYNC signals completion, beyond CONS moving past it. */
    public enum SyncSignal {
        /** Nothing more: software polls CONS (CS = NONE, or SEV without IDR0.SEV). */
        NONE,
        /** A 32-bit write of MSIData to MSIAddr (CS = IRQ with IDR0.MSI). */
        MSI_WRITE,
        /** A wired interrupt (CS = IRQ without IDR0.MSI: what QEMU does, §9.6). */
        WIRED_IRQ,
        /** A send-event to wake WFE pollers (CS = SEV with IDR0.SEV). */
        SEV
    }

    /**
     * How a CMD_SYNC with completion signal {@code cs} completes on an SMMU with {@code features} (§7
     * "CMD_SYNC completion semantics"). CS = SEV without IDR0.SEV is treated as NONE (this class's choice:
     * Linux polls CONS in that case anyway); the reserved CS = 0b11 is rejected by {@link #check}.
     */
    public static SyncSignal syncSignal(int cs, Features features) {
        switch (cs) {
            case CS_IRQ:
                return features.msi() ? SyncSignal.MSI_WRITE : SyncSignal.WIRED_IRQ;
            case CS_SEV:
                return features.sev() ? SyncSignal.SEV : SyncSignal.NONE;
            default:
                return SyncSignal.NONE;
        }
    }

    // ------------------------------------------------------------------ factories (driver side)

    private static Command of(int opcode, boolean ssec, boolean ssv, int ssid, int sid, int vmid, int asid,
            boolean leaf, long address, int range, int size, boolean global) {
        return new Command(opcode, ssec, ssv, ssid, sid, vmid, asid, 0, 0, leaf, 0, 0, address, range, size, global,
                0, 0, 0, 0, 0, 0, 0, 0);
    }

    /** CMD_PREFETCH_CONFIG: prefetch the configuration of a stream (and substream, when {@code ssv}). */
    public static Command prefetchConfig(int streamId, boolean ssv, int substreamId) {
        return of(PREFETCH_CONFIG, false, ssv, substreamId, streamId, 0, 0, false, 0, 0, 0, false);
    }

    /** CMD_PREFETCH_ADDR: prefetch the translation of {@code address} (4 KB aligned), Size as encoded. */
    public static Command prefetchAddr(int streamId, boolean ssv, int substreamId, long address, int size) {
        return of(PREFETCH_ADDR, false, ssv, substreamId, streamId, 0, 0, false, address, 0, size, false);
    }

    /** CMD_CFGI_STE: invalidate the cached STE of a stream ({@code leaf}: only the STE, not L1 descriptors). */
    public static Command cfgiSte(int streamId, boolean leaf) {
        return of(CFGI_STE, false, false, 0, streamId, 0, 0, leaf, 0, 0, 0, false);
    }

    /** CMD_CFGI_STE_RANGE: invalidate 2^(range+1) STEs, from {@code streamId} aligned down. */
    public static Command cfgiSteRange(int streamId, int range) {
        return of(CFGI_STE_RANGE, false, false, 0, streamId, 0, 0, false, 0, range, 0, false);
    }

    /** CMD_CFGI_ALL: CFGI_STE_RANGE with Range = 31 and StreamID 0, as Linux writes it. */
    public static Command cfgiAll() {
        return cfgiSteRange(0, CFGI_ALL_RANGE);
    }

    /** CMD_CFGI_CD: invalidate the cached CD of one substream of a stream. */
    public static Command cfgiCd(int streamId, int substreamId, boolean leaf) {
        return of(CFGI_CD, false, false, substreamId, streamId, 0, 0, leaf, 0, 0, 0, false);
    }

    /** CMD_CFGI_CD_ALL: invalidate every cached CD of a stream. */
    public static Command cfgiCdAll(int streamId) {
        return of(CFGI_CD_ALL, false, false, 0, streamId, 0, 0, false, 0, 0, 0, false);
    }

    /** CMD_TLBI_NH_ALL: all non-hypervisor stage-1 entries of a VMID. */
    public static Command tlbiNhAll(int vmid) {
        return of(TLBI_NH_ALL, false, false, 0, 0, vmid, 0, false, 0, 0, 0, false);
    }

    /** CMD_TLBI_NH_ASID: the stage-1 entries of an ASID in a VMID. */
    public static Command tlbiNhAsid(int vmid, int asid) {
        return of(TLBI_NH_ASID, false, false, 0, 0, vmid, asid, false, 0, 0, 0, false);
    }

    /** CMD_TLBI_NH_VA: one address of an ASID in a VMID (add a range with {@link #withRange}). */
    public static Command tlbiNhVa(int vmid, int asid, long va, boolean leaf) {
        return of(TLBI_NH_VA, false, false, 0, 0, vmid, asid, leaf, va, 0, 0, false);
    }

    /** CMD_TLBI_NH_VAA: one address of every ASID in a VMID. */
    public static Command tlbiNhVaa(int vmid, long va, boolean leaf) {
        return of(TLBI_NH_VAA, false, false, 0, 0, vmid, 0, leaf, va, 0, 0, false);
    }

    /** CMD_TLBI_EL3_ALL (secure only: {@link #check} rejects it on this emulator's non-secure queue). */
    public static Command tlbiEl3All() {
        return of(TLBI_EL3_ALL, false, false, 0, 0, 0, 0, false, 0, 0, 0, false);
    }

    /** CMD_TLBI_EL3_VA (secure only). */
    public static Command tlbiEl3Va(long va, boolean leaf) {
        return of(TLBI_EL3_VA, false, false, 0, 0, 0, 0, leaf, va, 0, 0, false);
    }

    /** CMD_TLBI_EL2_ALL. */
    public static Command tlbiEl2All() {
        return of(TLBI_EL2_ALL, false, false, 0, 0, 0, 0, false, 0, 0, 0, false);
    }

    /** CMD_TLBI_EL2_ASID. */
    public static Command tlbiEl2Asid(int asid) {
        return of(TLBI_EL2_ASID, false, false, 0, 0, 0, asid, false, 0, 0, 0, false);
    }

    /** CMD_TLBI_EL2_VA. */
    public static Command tlbiEl2Va(int asid, long va, boolean leaf) {
        return of(TLBI_EL2_VA, false, false, 0, 0, 0, asid, leaf, va, 0, 0, false);
    }

    /** CMD_TLBI_EL2_VAA. */
    public static Command tlbiEl2Vaa(long va, boolean leaf) {
        return of(TLBI_EL2_VAA, false, false, 0, 0, 0, 0, leaf, va, 0, 0, false);
    }

    /** CMD_TLBI_S12_VMALL: every stage-1 and stage-2 entry of a VMID. */
    public static Command tlbiS12Vmall(int vmid) {
        return of(TLBI_S12_VMALL, false, false, 0, 0, vmid, 0, false, 0, 0, 0, false);
    }

    /** CMD_TLBI_S2_IPA: the stage-2 entries of one IPA (below 2^52) in a VMID. */
    public static Command tlbiS2Ipa(int vmid, long ipa, boolean leaf) {
        return of(TLBI_S2_IPA, false, false, 0, 0, vmid, 0, leaf, ipa, 0, 0, false);
    }

    /** CMD_TLBI_NSNH_ALL: every non-secure non-hypervisor entry. */
    public static Command tlbiNsnhAll() {
        return of(TLBI_NSNH_ALL, false, false, 0, 0, 0, 0, false, 0, 0, 0, false);
    }

    /**
     * This TLBI by address made a range invalidation: TG (1 = 4 KB, 2 = 16 KB, 3 = 64 KB), TTL level hint,
     * NUM and SCALE ({@link #tlbiRangeLength}). As Linux computes them: for {@code n} pages of granule
     * {@code g}, {@code scale = ctz(n)}, {@code num = (n >> scale) - 1} (up to 32 pages per command step).
     */
    public Command withRange(int tg, int ttl, int num, int scale) {
        return new Command(opcode, ssec, ssv, substreamId, streamId, vmid, asid, num, scale, leaf, ttl, tg, address,
                range, size, global, cs, msh, msiAttr, msiData, msiAddr, resp, stag, prgi);
    }

    /**
     * CMD_ATC_INV: invalidate 2^size 4 KB pages at {@code address} (aligned down to the span) in the ATC of
     * a device; {@code global} ignores the substream.
     */
    public static Command atcInv(int streamId, boolean ssv, int substreamId, boolean global, long address, int size) {
        return of(ATC_INV, false, ssv, substreamId, streamId, 0, 0, false, address, 0, size, global);
    }

    /**
     * Word 0 of {@link #atcInv}{@code (streamId, ssv, substreamId, global, ...)}, built without allocating (for
     * drivers issuing one per unmap).
     */
    public static long atcInvWord0(int streamId, boolean ssv, int substreamId, boolean global) {
        long w = OPCODE.put(0, CommandOp.ATC_INV);
        w = SID.put(w, Integer.toUnsignedLong(streamId));
        if (ssv) {
            w = SSID.put(SSV.put(w, 1), Integer.toUnsignedLong(substreamId));
        }
        return global ? GLOBAL.put(w, 1) : w;
    }

    /** Word 1 of {@link #atcInv}{@code (..., address, size)}: Addr (bits [63:12] of {@code address}) and Size. */
    public static long atcInvWord1(long address, int size) {
        return ATC_SIZE.put(ATC_ADDRESS.putAddress(0, address), size);
    }

    /** CMD_ATC_INV of a device's whole ATC, as Linux writes it: Size {@link #ATC_INV_SIZE_ALL}, address 0. */
    public static Command atcInvAll(int streamId) {
        return atcInv(streamId, false, 0, false, 0, ATC_INV_SIZE_ALL);
    }

    /** CMD_PRI_RESP: answer page request group {@code prgi} with {@code resp} ({@link #PRI_RESP_SUCCESS}…). */
    public static Command priResp(int streamId, boolean ssv, int substreamId, int prgi, int resp) {
        return new Command(PRI_RESP, false, ssv, substreamId, streamId, 0, 0, 0, 0, false, 0, 0, 0, 0, 0, false, 0, 0,
                0, 0, 0, resp, 0, prgi);
    }

    /** CMD_RESUME: resume the stalled transaction {@code stag} with {@code action} ({@link #RESUME_RETRY}…). */
    public static Command resume(int streamId, int stag, int action) {
        return new Command(RESUME, false, false, 0, streamId, 0, 0, 0, 0, false, 0, 0, 0, 0, 0, false, 0, 0, 0, 0, 0,
                action, stag, 0);
    }

    /** CMD_STALL_TERM: terminate every stalled transaction of a stream. */
    public static Command stallTerm(int streamId) {
        return of(STALL_TERM, false, false, 0, streamId, 0, 0, false, 0, 0, 0, false);
    }

    /** CMD_SYNC with every field given. */
    public static Command cmdSync(int cs, int msh, int msiAttr, int msiData, long msiAddr) {
        return new Command(CMD_SYNC, false, false, 0, 0, 0, 0, 0, 0, false, 0, 0, 0, 0, 0, false, cs, msh, msiAttr,
                msiData, msiAddr, 0, 0, 0);
    }

    /** CMD_SYNC with a completion signal and no MSI. */
    public static Command cmdSync(int cs) {
        return cmdSync(cs, 0, 0, 0, 0);
    }

    /** MSIAttr Linux writes into CMD_SYNC: Normal, inner and outer write-back (0xF). */
    public static final int MSIATTR_OIWB = 0xF;

    /**
     * CMD_SYNC as Linux's {@code arm_smmu_cmdq_build_sync_cmd} writes it: with {@code msiAddr} ≠ 0 (MSI
     * polling: the address of this command's own slot) CS = IRQ and MSIData 0; otherwise CS = SEV. Both with
     * MSH inner shareable and MSIAttr {@link #MSIATTR_OIWB}.
     */
    public static Command cmdSyncAsLinux(long msiAddr) {
        return cmdSync(msiAddr != 0 ? CS_IRQ : CS_SEV, Encodings.SH_ISH, MSIATTR_OIWB, 0, msiAddr);
    }

    @Override
    public String toString() {
        return CommandOp.name(opcode) + "[dw0=" + Bits.hex(dw0()) + ", dw1=" + Bits.hex(dw1()) + "]";
    }
}
