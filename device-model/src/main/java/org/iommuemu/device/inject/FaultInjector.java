package org.iommuemu.device.inject;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.xlate.SimClock;

/**
 * The faults of one machine: which are active, their triggers, and the {@link InjectionLog} of every firing.
 *
 * <p>Devices {@link #attach} themselves (an {@link InstanceFaults} per IOMMU instance) and call its hooks at their
 * injection points. {@link #inject} validates a {@link FaultSpec} and activates it: a memory kind is carried out at
 * once (a read-modify-write of one 64-bit word of guest RAM through {@link PhysicalMemory}, recorded) and is
 * exhausted; any other kind is published to the instances it targets (a bus kind to the bus's {@link BusFaults},
 * which matches the instance a call is about), and fires at their opportunities as its trigger says. Each fault
 * draws from its own {@link SplittableRandom} seeded from its spec, so the same opportunities and seed give the same
 * decisions.
 *
 * <p>Thread-safe. Publishing replaces an instance's array of active faults (copy on write), so hooks never lock
 * unless a fault is active on their instance; a fault's trigger state has its own monitor.
 */
public final class FaultInjector {
    private final PhysicalMemory memory;
    private final Map<String, InstanceFaults> instances = new LinkedHashMap<>();
    private final Map<Long, Active> faults = new TreeMap<>();
    private final InjectionLog log = new InjectionLog();
    private final BusFaults bus = new BusFaults(this);
    /** Instances whose active faults changed and whose listener has not run yet; guarded by this. */
    private final Set<InstanceFaults> changed = new LinkedHashSet<>();
    private long nextId = 1;

    /** An injector without memory (memory kinds are refused): for devices built outside a machine. */
    public FaultInjector() {
        this(null);
    }

    /** An injector whose memory kinds change {@code memory}. */
    public FaultInjector(PhysicalMemory memory) {
        this.memory = memory;
    }

    /**
     * Registers IOMMU instance {@code name}, whose simulated time is {@code clock}, and returns its hooks.
     *
     * @throws IllegalArgumentException when an instance of that name is attached already
     */
    public InstanceFaults attach(String name, SimClock clock) {
        InstanceFaults i;
        synchronized (this) {
            if (instances.containsKey(name)) {
                throw new IllegalArgumentException("an instance named " + name + " is attached already");
            }
            i = new InstanceFaults(this, name, clock);
            instances.put(name, i);
            publish();
        }
        notifyChanged();
        return i;
    }

    /** The hooks of instance {@code name}, or null. */
    public synchronized InstanceFaults instance(String name) {
        return instances.get(name);
    }

    /** The gRPC bus's hooks: the active bus-kind faults of every instance. */
    public BusFaults bus() {
        return bus;
    }

    /** Records every firing into {@code tracer} (the machine's). */
    public void tracer(Tracer tracer) {
        log.tracer(tracer);
    }

    public InjectionLog log() {
        return log;
    }

    /**
     * Activates a fault (a copy of {@code spec}).
     *
     * @return the fault's id: from 1, never reused
     * @throws FaultSpecException.Unimplemented for a kind not implemented yet
     * @throws FaultSpecException.NotFound for an instance that does not exist
     * @throws FaultSpecException.OutOfRange for a memory fault outside RAM
     * @throws FaultSpecException naming the field for anything else wrong
     */
    public long inject(FaultSpec spec) {
        FaultSpec s = spec.copy().validate();
        long id;
        synchronized (this) {
            String iommu = s.target().iommu();
            InstanceFaults where = iommu.isEmpty() ? null : instances.get(iommu);
            if (!iommu.isEmpty() && where == null) {
                throw new FaultSpecException.NotFound("target.iommu", "iommu '" + iommu + "' not found (instances: "
                        + List.copyOf(instances.keySet()) + ")");
            }
            Set<String> refused = refusals(s, where);
            Active f = new Active(nextId, s, refused);
            if (s.kind().oneShot()) {
                corrupt(f, where);
            } else if (s.kind().mode() == InjectionKind.Mode.WHILE_ACTIVE) {
                for (InstanceFaults i : where == null ? List.copyOf(instances.values()) : List.of(where)) {
                    if (refused.contains(i.name())) {
                        continue;
                    }
                    i.countFired(s.kind());
                    log.add(f.id, s.kind(), i.name(), i.now(), 0, 0, "active until cleared: " + s);
                }
            }
            nextId++;
            faults.put(f.id, f);
            publish();
            id = f.id;
        }
        notifyChanged();
        return id;
    }

    /**
     * Runs the devices' own checks ({@link InstanceFaults.Check}): a fault aimed at one instance fails with that
     * instance's {@link FaultSpecException}; a fault for every instance skips the instances that refuse it and fails
     * only when every instance does. Returns the names of the instances skipped.
     */
    private Set<String> refusals(FaultSpec s, InstanceFaults where) {
        if (s.kind().oneShot()) {
            return Set.of();
        }
        if (where != null) {
            where.checkFault(s);
            return Set.of();
        }
        Set<String> refused = new HashSet<>();
        FaultSpecException first = null;
        for (InstanceFaults i : instances.values()) {
            try {
                i.checkFault(s);
            } catch (FaultSpecException e) {
                refused.add(i.name());
                first = first == null ? e : first;
            }
        }
        if (first != null && refused.size() == instances.size()) {
            throw first;
        }
        return Set.copyOf(refused);
    }

    private void corrupt(Active f, InstanceFaults where) {
        if (memory == null) {
            throw new FaultSpecException("kind", f.spec.kind() + " needs the machine's memory; this injector has none");
        }
        FaultSpec.Params p = f.spec.params();
        long address = p.address();
        long mask = f.spec.kind() == InjectionKind.MEMORY_FLIP_BIT ? 1L << p.bit()
                : (p.fieldWidth() == 64 ? -1L : ((1L << p.fieldWidth()) - 1) << p.fieldLsb());
        long old;
        long now;
        try {
            do {
                old = memory.read64(address);
                now = f.spec.kind() == InjectionKind.MEMORY_FLIP_BIT ? old ^ mask
                        : (old & ~mask) | (p.fieldValue() << p.fieldLsb() & mask);
            } while (memory.compareAndExchange64(address, old, now) != old);
        } catch (MemoryAccessException e) {
            throw new FaultSpecException.OutOfRange("params.address", "0x" + Long.toHexString(address)
                    + " is not RAM: " + e.getMessage());
        }
        synchronized (f) {
            f.fires = 1;
            f.exhausted = true;
        }
        if (where != null) {
            where.countFired(f.spec.kind());
        }
        log.add(f.id, f.spec.kind(), where == null ? "" : where.name(), where == null ? 0 : where.now(), 0, address,
                (f.spec.kind() == InjectionKind.MEMORY_FLIP_BIT ? "flipped bit " + p.bit()
                        : "wrote 0x" + Long.toHexString(p.fieldValue()) + " to bits " + p.fieldLsb() + ".."
                                + (p.fieldLsb() + p.fieldWidth() - 1))
                        + " of the word at 0x" + Long.toHexString(address) + ": 0x" + Long.toHexString(old) + " -> 0x"
                        + Long.toHexString(now));
    }

    /** One fault's state, as {@link #list} reports it. */
    public record Status(long id, FaultSpec spec, long opportunities, long fires, boolean exhausted) {}

    /** The faults not cleared yet, by id; only those targeting {@code iommu} (or every instance) unless empty. */
    public synchronized List<Status> list(String iommu) {
        List<Status> out = new ArrayList<>();
        for (Active f : faults.values()) {
            String t = f.spec.target().iommu();
            if (iommu.isEmpty() || t.isEmpty() || t.equals(iommu)) {
                synchronized (f) {
                    out.add(new Status(f.id, f.spec.copy(), f.opportunities, f.fires, f.exhausted));
                }
            }
        }
        return out;
    }

    /**
     * Removes fault {@code id}; it fires no more (memory it corrupted stays corrupted).
     *
     * @throws FaultSpecException.NotFound when there is no such fault
     */
    public void clear(long id) {
        synchronized (this) {
            if (faults.remove(id) == null) {
                throw new FaultSpecException.NotFound("fault_id", "fault " + id + " not found (faults: "
                        + List.copyOf(faults.keySet()) + ")");
            }
            publish();
        }
        notifyChanged();
    }

    /** Removes every fault; returns their ids. */
    public List<Long> clearAll() {
        List<Long> ids;
        synchronized (this) {
            ids = List.copyOf(faults.keySet());
            faults.clear();
            publish();
        }
        notifyChanged();
        return ids;
    }

    void record(Active f, InstanceFaults where, int code, long address, String detail) {
        log.add(f.id, f.spec.kind(), where.name(), where.now(), code, address, detail);
        boolean retire;
        synchronized (f) {
            retire = f.exhausted;
        }
        if (retire) {
            synchronized (this) {
                publish();
            }
            notifyChanged();
        }
    }

    /**
     * Runs the change listeners of the instances whose active faults changed, outside this monitor: a listener
     * takes a device's locks (a cache's), and a device may call a hook (which can take this monitor) with such a
     * lock held. A listener reads the instance's current faults, so a late or repeated run is harmless.
     */
    private void notifyChanged() {
        List<InstanceFaults> todo;
        synchronized (this) {
            if (changed.isEmpty()) {
                return;
            }
            todo = List.copyOf(changed);
            changed.clear();
        }
        for (InstanceFaults i : todo) {
            i.changed();
        }
    }

    /** Records a bus fault's firing on the call's instance {@code iommu} (empty: none) and counts it there. */
    void recordBus(Active f, String iommu, long address, String detail) {
        InstanceFaults where = iommu.isEmpty() ? null : instance(iommu);
        if (where == null) {
            log.add(f.id, f.spec.kind(), "", 0, 0, address, detail);
        } else {
            where.countFired(f.spec.kind());
            log.add(f.id, f.spec.kind(), where.name(), where.now(), 0, address, detail);
        }
        boolean retire;
        synchronized (f) {
            retire = f.exhausted;
        }
        if (retire) {
            synchronized (this) {
                publish();
            }
        }
    }

    /**
     * Gives every instance the array of live faults targeting it, and the bus every live bus-kind fault. The caller
     * holds this monitor.
     */
    private void publish() {
        List<Active> onBus = new ArrayList<>();
        for (Active f : faults.values()) {
            synchronized (f) {
                if (!f.exhausted && f.spec.kind().group() == InjectionKind.Group.BUS) {
                    onBus.add(f);
                }
            }
        }
        if (!java.util.Arrays.equals(bus.active, onBus.toArray())) {
            bus.active = onBus.toArray(new Active[0]);
        }
        for (InstanceFaults i : instances.values()) {
            List<Active> live = new ArrayList<>();
            for (Active f : faults.values()) {
                String t = f.spec.target().iommu();
                boolean over;
                synchronized (f) {
                    over = f.exhausted;
                }
                if (!over && !f.spec.kind().oneShot() && f.spec.kind().group() != InjectionKind.Group.BUS
                        && (t.isEmpty() || t.equals(i.name())) && !f.refused.contains(i.name())) {
                    live.add(f);
                }
            }
            Active[] before = i.active;
            i.active = live.toArray(new Active[0]);
            if (!java.util.Arrays.equals(before, i.active)) {
                changed.add(i);
            }
        }
    }

    /** An injected fault and its trigger state. */
    static final class Active {
        final long id;
        final FaultSpec spec;
        /** Instances whose device refused the fault (it targets every instance); it never applies to them. */
        final Set<String> refused;
        private final SplittableRandom random;
        private long opportunities;
        private long fires;
        private boolean exhausted;

        Active(long id, FaultSpec spec, Set<String> refused) {
            this.id = id;
            this.spec = spec;
            this.refused = refused;
            this.random = new SplittableRandom(spec.trigger().seed());
        }

        /** One opportunity: whether the fault fires there. */
        synchronized boolean decide() {
            if (exhausted) {
                return false;
            }
            FaultSpec.Trigger t = spec.trigger();
            opportunities++;
            if (opportunities <= t.skipFirst()) {
                return false;
            }
            if (t.hasProbability() && !(random.nextDouble() < t.probability())) {
                return false;
            }
            fires++;
            if (t.count() > 0 && fires >= t.count()) {
                exhausted = true;
            }
            return true;
        }
    }
}
