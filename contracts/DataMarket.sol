// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import "./DataUseAuthorization.sol";
import "./MemberGated.sol";

/// @title Data offers and data asset certificates (保险数据资产凭证).
/// @notice A data owner publishes an offer (dataset, purpose, scope, term, prices, revenue share). A member
///         buys it: the purchase mints an ERC-721 certificate to the buyer and creates the matching grant in
///         DataUseAuthorization, valid for the offer's term. The owner's node enforces that grant like any
///         other (release policy unchanged). Revoking the certificate revokes the grant; its expiry is the
///         grant's expiry; a suspended holder's grant stops authorizing at once (DataUseAuthorization.grantStatus).
/// @dev Certificates cannot be transferred: the grant, the consent it rests on and the owner's release policy
///      (differencing history, DP budget) are all per grantee, so moving the token would hand a data use to a
///      member the owner never sold to. Nothing is paid here: charges are metered and settled per period (Settlement).
contract DataMarket is ERC721, MemberGated {
    /// @notice What an offer sells and at which prices (smallest currency unit; shares in basis points).
    struct Terms {
        bytes32 datasetId;
        DataUseAuthorization.Purpose purpose;
        bytes32 scopeHash;
        uint64 term;                  // seconds a certificate (and its grant) stays valid
        uint96 periodFee;             // charged for every settlement period a certificate is valid in
        uint96 perAccessPrice;        // per access record under the certificate's grant
        uint96 perRowPrice;           // per row served in those access records
        uint96 perContributionPrice;  // per statistics contribution the owner commits to a job of the holder
        uint16 revenueShareBps;       // the data-value share the owner asks for (informs agreements, see README)
        bytes32 consentRef;           // the owner's attestation of the consent to sell this use to members
    }

    struct Offer {
        address owner;
        bool open;
        uint64 publishedAt;
        Terms terms;
    }

    struct Certificate {
        uint256 offerId;
        uint256 grantId;
        address holder;
        address owner;
        uint64 issuedAt;
        uint64 expiresAt;
        uint64 revokedAt;
    }

    error UnknownOffer(uint256 offerId);
    error UnknownCertificate(uint256 certificateId);
    error NotOfferOwner(uint256 offerId, address caller);
    error OfferClosed(uint256 offerId);
    error OwnOffer(uint256 offerId);
    error BadTerms();
    error CertificateNotTransferable(uint256 certificateId);
    error CertificateAlreadyRevoked(uint256 certificateId);

    event OfferPublished(uint256 indexed offerId, address indexed owner, bytes32 indexed datasetId,
                         DataUseAuthorization.Purpose purpose, Terms terms);
    event OfferWithdrawn(uint256 indexed offerId, address indexed owner);
    event CertificateIssued(uint256 indexed certificateId, uint256 indexed offerId, address indexed holder,
                            address owner, uint256 grantId, uint64 expiresAt);
    event CertificateRevoked(uint256 indexed certificateId, address indexed by, bytes32 reasonHash);

    DataUseAuthorization public immutable authorizations;
    Offer[] private _offers;
    Certificate[] private _certificates;

    constructor(IConsortiumRegistry registry_, DataUseAuthorization authorizations_)
        ERC721("Consortium Data Asset Certificate", "CDAC")
        MemberGated(registry_)
    {
        authorizations = authorizations_;
    }

    /// @notice Publish an offer for one of the caller's datasets.
    /// @return offerId the new offer's id (ids start at 1)
    function publishOffer(Terms calldata terms) external onlyGoodStanding returns (uint256 offerId) {
        if (terms.purpose == DataUseAuthorization.Purpose.NONE || terms.term == 0 || terms.revenueShareBps > 10_000) {
            revert BadTerms();
        }
        _offers.push(Offer(msg.sender, true, uint64(block.timestamp), terms));
        offerId = _offers.length;
        emit OfferPublished(offerId, msg.sender, terms.datasetId, terms.purpose, terms);
    }

    /// @notice Stop selling an offer; certificates already sold stay valid until they expire or are revoked.
    function withdrawOffer(uint256 offerId) external onlyGoodStanding {
        Offer storage o = _offer(offerId);
        if (o.owner != msg.sender) revert NotOfferOwner(offerId, msg.sender);
        if (!o.open) revert OfferClosed(offerId);
        o.open = false;
        emit OfferWithdrawn(offerId, msg.sender);
    }

    /// @notice Buy an offer: mints a certificate to the caller and creates its grant, valid for the offer's term.
    /// @return certificateId the certificate's id (its ERC-721 token id; ids start at 1)
    function buy(uint256 offerId) external onlyGoodStanding returns (uint256 certificateId) {
        Offer storage o = _offer(offerId);
        if (!o.open) revert OfferClosed(offerId);
        if (o.owner == msg.sender) revert OwnOffer(offerId);
        _requireGoodStanding(o.owner);
        Terms storage t = o.terms;
        uint64 expiresAt = uint64(block.timestamp) + t.term;
        // The grant id is read back from the trusted DataUseAuthorization (bound to this market at deployment).
        uint256 grantId = authorizations.grantFromMarket(o.owner, msg.sender, t.datasetId, t.purpose, t.scopeHash, expiresAt, t.consentRef);
        _certificates.push(Certificate(offerId, grantId, msg.sender, o.owner, uint64(block.timestamp), expiresAt, 0));
        certificateId = _certificates.length;
        _mint(msg.sender, certificateId);  // _mint, not _safeMint: no callback into the buyer
        emit CertificateIssued(certificateId, offerId, msg.sender, o.owner, grantId, expiresAt);
    }

    /// @notice Revoke a certificate (the offer's owner, e.g. on breach of its terms): its grant is revoked with it.
    function revokeCertificate(uint256 certificateId, bytes32 reasonHash) external onlyGoodStanding {
        Certificate storage c = _certificate(certificateId);
        if (c.owner != msg.sender) revert NotOfferOwner(c.offerId, msg.sender);
        if (c.revokedAt != 0) revert CertificateAlreadyRevoked(certificateId);
        c.revokedAt = uint64(block.timestamp);
        emit CertificateRevoked(certificateId, msg.sender, reasonHash);
        authorizations.revokeFromMarket(c.grantId);
    }

    // ---------------------------------------------------------------- views

    /// @notice An offer by id.
    function getOffer(uint256 offerId) external view returns (Offer memory) {
        return _offer(offerId);
    }

    /// @notice A certificate by id.
    function getCertificate(uint256 certificateId) external view returns (Certificate memory) {
        return _certificate(certificateId);
    }

    /// @notice Whether a certificate's grant authorizes use right now (not revoked, not expired, both parties in good standing).
    function certificateValid(uint256 certificateId) external view returns (bool) {
        return authorizations.grantStatus(_certificate(certificateId).grantId) == DataUseAuthorization.GrantState.VALID;
    }

    /// @notice Number of offers ever published.
    function offerCount() external view returns (uint256) {
        return _offers.length;
    }

    /// @notice Number of certificates ever issued.
    function certificateCount() external view returns (uint256) {
        return _certificates.length;
    }

    // ---------------------------------------------------------------- internals

    /// @dev Minting only: every transfer (and burn) is refused, see the contract's note.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        if (_ownerOf(tokenId) != address(0)) revert CertificateNotTransferable(tokenId);
        return super._update(to, tokenId, auth);
    }

    function _offer(uint256 offerId) internal view returns (Offer storage) {
        if (offerId == 0 || offerId > _offers.length) revert UnknownOffer(offerId);
        return _offers[offerId - 1];
    }

    function _certificate(uint256 certificateId) internal view returns (Certificate storage) {
        if (certificateId == 0 || certificateId > _certificates.length) revert UnknownCertificate(certificateId);
        return _certificates[certificateId - 1];
    }
}
