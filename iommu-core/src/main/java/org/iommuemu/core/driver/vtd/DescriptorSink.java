package org.iommuemu.core.driver.vtd;

/**
 * Where invalidation descriptors go, given as their first two 64-bit words (qw2 and qw3 of 256-bit descriptors
 * are zero for every type the driver issues). The invalidation queue is one; tests record them.
 */
@FunctionalInterface
public interface DescriptorSink {
    void descriptor(long qw0, long qw1);
}
