namespace BackupFuse.Vhdx.Format;

/// <summary>The well-known GUIDs of MS-VHDX (regions, system metadata items, the VHDX parent locator type).</summary>
public static class VhdxGuids
{
    /// <summary>Region table entry of the block allocation table.</summary>
    public static readonly Guid BatRegion = new("2DC27766-F623-4200-9D64-115E9BFD4A08");

    /// <summary>Region table entry of the metadata region.</summary>
    public static readonly Guid MetadataRegion = new("8B7CA206-4790-4B9A-B8FE-575F050F886E");

    /// <summary>Metadata item: File Parameters.</summary>
    public static readonly Guid FileParameters = new("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");

    /// <summary>Metadata item: Virtual Disk Size.</summary>
    public static readonly Guid VirtualDiskSize = new("2FA54224-CD1B-4876-B211-5DBED83BF4B8");

    /// <summary>Metadata item: Virtual Disk ID (SCSI page 83 data).</summary>
    public static readonly Guid VirtualDiskId = new("BECA12AB-B2E6-4523-93EF-C309E000C746");

    /// <summary>Metadata item: Logical Sector Size.</summary>
    public static readonly Guid LogicalSectorSize = new("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");

    /// <summary>Metadata item: Physical Sector Size.</summary>
    public static readonly Guid PhysicalSectorSize = new("CDA348C7-445D-4471-9CC9-E9885251C556");

    /// <summary>Metadata item: Parent Locator.</summary>
    public static readonly Guid ParentLocator = new("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");

    /// <summary>Locator type of the VHDX parent locator (keys parent_linkage, relative_path, ...).</summary>
    public static readonly Guid VhdxParentLocatorType = new("B04AEFB7-D19E-4A81-B789-25B8E9445913");
}
