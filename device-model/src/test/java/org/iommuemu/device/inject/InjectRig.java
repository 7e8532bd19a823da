package org.iommuemu.device.inject;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.driver.vtd.VtdDriver;
import org.iommuemu.core.driver.vtd.VtdFault;
import org.iommuemu.core.driver.vtd.VtdListener;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.L1CdDescriptor;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.DriverInstance.Stage;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.machine.SmmuDriverInstance;
import org.iommuemu.device.machine.VtdDriverInstance;

/**
 * The small machine the command and walk fault tests share (as FaultInjectionPointsTest's rig): one instance of a
 * machine taken over by the machine's in-process driver, one domain attached to one stream, one mapped page; the
 * event records / fault records the driver reads are collected.
 */
final class InjectRig {
    static final long IOVA = 0x40_0000L;
    static final int SID = 5;
    static final int RID = 0x0310;

    final Machine m;
    final String name;
    final int sid;
    final DriverInstance o;
    final IommuDomain d;
    final long buf;
    final List<EventRecord> events = new CopyOnWriteArrayList<>();
    final List<VtdFault> vtdFaults = new CopyOnWriteArrayList<>();

    InjectRig(MachineConfig config, String name, Stage stage, int sid) throws Exception {
        this.m = new Machine(config);
        this.name = name;
        this.sid = sid;
        o = m.driverHost().takeOver(m.iommu(name));
        d = IommuDomain.builder(o.format(stage, 12, o.defaultInputBits(stage), o.outputBits()), m.memory(),
                m.driverHost().heap()).name("d").build();
        o.attachStream(d, stage, sid);
        buf = m.driverHost().heap().allocPages(0, "buf");
        m.memory().write64(buf, 0x1122_3344_5566_7788L);
        d.map(IOVA, buf, 4096, Prot.READ | Prot.WRITE);
        if (o instanceof SmmuDriverInstance s) {
            s.driver().addListener(new SmmuV3Listener() {
                @Override
                public void onEvent(EventRecord event) {
                    events.add(event);
                }
            });
        } else {
            ((VtdDriverInstance) o).driver().addListener(new VtdListener() {
                @Override
                public void onFault(VtdFault fault) {
                    vtdFaults.add(fault);
                }
            });
        }
    }

    static InjectRig smmu() throws Exception {
        return new InjectRig(MachineConfig.defaults(), "smmu0", Stage.S1, SID);
    }

    static InjectRig vtd() throws Exception {
        return new InjectRig(MachineConfig.defaults(), "dmar0", Stage.S2, RID);
    }

    DmaOutcome read() {
        return m.dma().read(m.iommu(name), sid, -1, IOVA, new byte[8], 0, 8, 0, new DmaOutcome());
    }

    FaultInjector faults() {
        return m.faults();
    }

    IommuDevice device() {
        return m.iommu(name);
    }

    PhysicalMemory mem() {
        return m.memory();
    }

    SmmuV3Driver smmuDriver() {
        return ((SmmuDriverInstance) o).driver();
    }

    VtdDriver vtdDriver() {
        return ((VtdDriverInstance) o).driver();
    }

    /** The driver of another VT-d instance of the machine, taking it over. */
    VtdDriver vtdDriverOf(String other) {
        return ((VtdDriverInstance) m.driverHost().takeOver(m.iommu(other))).driver();
    }

    long simNanos() {
        return device().stats().simTimeNs();
    }

    /** The address of this stream's STE, through the driver's stream table (linear or 2-level). */
    long steAddress() throws Exception {
        SmmuV3Driver.Layout l = smmuDriver().layout();
        if (!l.twoLevelStreamTable()) {
            return l.streamTableBase() + 64L * sid;
        }
        long l1 = mem().read64(l.streamTableBase() + 8L * (sid >>> 8));
        return (l1 & 0x000F_FFFF_FFFF_FFC0L) + 64L * (sid & 0xFF);
    }

    /** The address of this stream's CD 0 (linear or 2-level CD table). */
    long cdAddress() throws Exception {
        long ste = steAddress();
        Ste s = Ste.decode(mem().read64(ste), mem().read64(ste + 8), mem().read64(ste + 16), mem().read64(ste + 24));
        long ptr = s.s1ContextPtr();
        if (s.s1CdMax() == 0 || s.s1Fmt() == Ste.S1FMT_LINEAR) {
            return ptr;
        }
        return L1CdDescriptor.l2Ptr(mem().read64(ptr));
    }

    /** VT-d scalable mode: the root entry, scalable-context entry, PASID-directory and PASID-table entries. */
    long[] vtdStructures() throws Exception {
        long root = vtdDriver().layout().rootTable() + 16L * (sid >>> 8);
        long re = mem().read64(root + ((sid & 0xFF) < 128 ? 0 : 8));
        long ce = (re & VtdTables.PTR_MASK) + 32L * (sid & 0x7F);
        long dir = mem().read64(ce) & VtdTables.PTR_MASK;
        long pe = mem().read64(dir) & VtdTables.PTR_MASK;
        return new long[] {root, ce, dir, pe};
    }
}
