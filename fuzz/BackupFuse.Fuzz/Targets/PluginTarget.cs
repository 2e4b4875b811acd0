using System.Text;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - A plugin file is written by anyone who can write into the mounted directory. PluginFile.Load is what the daemon
//   calls (regular-file open, size cap, UTF-8, Parse); the input is written to a scratch file for it.
// - A plugin that parses must survive a round trip: the text ToText writes for it parses to the same plugin (what
//   `plugin create` writes, the daemon must read back as the same backup point). A difference is a crash.

/// <summary>The plugin pointer file (src/BackupFuse.Daemon/BackupPoints/PluginFile.cs).</summary>
public sealed class PluginTarget : FuzzTarget
{
    private readonly string _path = Path.Combine(ScratchDirectory, "fuzz-plugin.vhdx");

    /// <inheritdoc/>
    public override string Name => "plugin";

    /// <inheritdoc/>
    public override string Description =>
        "plugin file: PluginFile.Load, and a parsed plugin must round-trip through ToText; passes on InvalidDataException, IOException";

    /// <inheritdoc/>
    public override int MaxInputLength => PluginFile.MaxSize + 16;

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        File.WriteAllBytes(_path, input);
        PluginFile plugin;
        try
        {
            plugin = PluginFile.Load(_path);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return;
        }

        string text = plugin.ToText();
        PluginFile again;
        try
        {
            again = PluginFile.Parse(text, "round trip");
        }
        catch (InvalidDataException e)
        {
            throw new FuzzFailureException($"a parsed plugin does not parse again after ToText: {e.Message}", e);
        }

        if (again.ToText() != text || !again.Equals(plugin))
        {
            throw new FuzzFailureException($"a parsed plugin reads back differently after ToText:\n{text}\n---\n{again.ToText()}");
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory)
    {
        var id = new Guid("0f9c3f0e-8a5b-4c1e-9d2f-3a4b5c6d7e8f");
        var seeds = new Dictionary<string, string>
        {
            ["v1"] = new PluginFile(1, "/backups/web01-1122.bfi", id).ToText(),
            ["v1-pristine"] = new PluginFile(1, "/backups/web01.bfi", id, Pristine: true).ToText(),
            ["v1-remote"] = new PluginFile(1, "https://backups.example/dir/web01.bfi", id).ToText(),
            ["v1-s3"] = new PluginFile(1, "s3://bucket/prefix/web01.bfi", id).ToText(),
            ["v2-volumes"] = new PluginFile(2, "/backups/sda1.bfi", id)
            {
                MoreImages = [new PluginImage("/backups/sda2.bfi", Guid.NewGuid())],
                PartitionTable = BackupFuse.Core.Partitions.PartitionTableKind.Mbr,
                PartitionType = new Guid("0fc63daf-8483-4772-8e79-3d69d8477de4"),
            }.ToText(),
            ["crlf-comments"] = "backupfuse-plugin 1\r\n# comment\r\n\r\n  image = /b/x.bfi  \r\nimage-id = " + id + "\r\n",
            ["damaged-unknown-key"] = "backupfuse-plugin 1\nimage = /b/x.bfi\nimage-id = " + id + "\ncolour = blue\n",
            ["damaged-version"] = "backupfuse-plugin 9\nimage = /b/x.bfi\n",
        };
        foreach (var (name, text) in seeds)
        {
            File.WriteAllText(Path.Combine(directory, name), text, new UTF8Encoding(false));
        }
    }
}
