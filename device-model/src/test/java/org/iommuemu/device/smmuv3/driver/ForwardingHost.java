package org.iommuemu.device.smmuv3.driver;

import java.util.function.Consumer;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/** A host that passes everything to another; tests override what they want to break. */
class ForwardingHost implements SmmuHost {
    final SmmuHost next;

    ForwardingHost(SmmuHost next) {
        this.next = next;
    }

    @Override
    public long mmioRead(long offset, int width) {
        return next.mmioRead(offset, width);
    }

    @Override
    public void mmioWrite(long offset, int width, long value) {
        next.mmioWrite(offset, width, value);
    }

    @Override
    public PhysicalMemory memory() {
        return next.memory();
    }

    @Override
    public PageAllocator allocator() {
        return next.allocator();
    }

    @Override
    public void onInterrupt(Consumer<Irq> handler) {
        next.onInterrupt(handler);
    }
}
