package org.iommuemu.core.driver.vtd;

import java.lang.management.ManagementFactory;

/** Bytes the current thread allocates running a piece of code (HotSpot's thread MXBean), after a warm-up run. */
final class AllocationProbe {
    private AllocationProbe() {}

    @SuppressWarnings("deprecation") // Thread.getId: threadId() arrives in Java 19
    static long bytes(Runnable work) {
        com.sun.management.ThreadMXBean bean = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().getId();
        work.run();
        work.run();
        long before = bean.getThreadAllocatedBytes(thread);
        work.run();
        return bean.getThreadAllocatedBytes(thread) - before;
    }
}
