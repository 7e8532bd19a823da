package org.iommuemu.device.campaign;

/** A campaign that cannot run as given: a bad campaign file or scenario, or a bad option. The message says where. */
public final class CampaignException extends RuntimeException {
    public CampaignException(String message) {
        super(message);
    }

    public CampaignException(String message, Throwable cause) {
        super(message, cause);
    }
}
