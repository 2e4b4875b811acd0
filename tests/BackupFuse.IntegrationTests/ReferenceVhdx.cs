using BackupFuse.BackupImage.Reading;
using BackupFuse.Vhdx;

namespace BackupFuse.IntegrationTests;

/// <summary>The synthesized VHDX of an image, computed in-process: what the mount must serve.</summary>
internal sealed class ReferenceVhdx : IDisposable
{
    private readonly BackupChain _chain;
    private readonly SynthesizedVhdx _vhdx;

    public ReferenceVhdx(string imagesDir, string image)
    {
        _chain = BackupChain.Open(Path.Combine(imagesDir, image));
        _vhdx = new SynthesizedVhdx(_chain.CreateSource(), _chain.Top.Id);
    }

    public long PayloadOffset => _vhdx.Layout.PayloadOffset;

    public void Read(long offset, Span<byte> buffer) => _vhdx.Read(offset, buffer);

    public void Dispose()
    {
        _vhdx.Dispose();
        _chain.Dispose();
    }
}
