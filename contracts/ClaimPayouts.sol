// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title One claim, one payout scheme: the record the pool contracts share so a claim is never paid twice.
/// @notice RiskPool (a loss shared among insurers) and MutualAid (a payout apportioned among participants)
///         each pay a confirmed claim, and each refuses a claim it already took. Neither sees the other's
///         records, so without this contract one claim could be paid by both. Every scheme reserves the
///         claim key here in the same transaction that takes the claim; the second scheme's reservation,
///         or a second one by the same scheme, reverts. The schemes are bound once, by the deployer,
///         right after deployment; until then nothing can be reserved (deny by default).
contract ClaimPayouts {
    error NotDeployer(address caller);
    error SchemesAlreadyBound();
    error BadScheme(address scheme);
    error NotScheme(address caller);
    error ClaimAlreadyPaid(bytes32 claimKey, address scheme);

    event SchemesBound(address[] schemes);
    event ClaimPayoutReserved(bytes32 indexed claimKey, address indexed scheme);

    address private immutable _deployer;
    bool public bound;
    mapping(address => bool) public isScheme;
    /// @dev claim key (EvidenceRegistry.claimKey) => the scheme that pays it
    mapping(bytes32 => address) public paidBy;

    constructor() {
        _deployer = msg.sender;
    }

    /// @notice Bind the payout schemes (the pool contracts); callable once, by the deployer.
    function bindSchemes(address[] calldata schemes) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (bound) revert SchemesAlreadyBound();
        if (schemes.length == 0) revert BadScheme(address(0));
        for (uint256 i = 0; i < schemes.length; i++) {
            address scheme = schemes[i];
            if (scheme == address(0) || scheme.code.length == 0 || isScheme[scheme]) revert BadScheme(scheme);
            isScheme[scheme] = true;
        }
        bound = true;
        emit SchemesBound(schemes);
    }

    /// @notice Reserve `claimKey` for the calling scheme; reverts if any scheme (the caller included) holds it.
    function reserve(bytes32 claimKey) external {
        if (!isScheme[msg.sender]) revert NotScheme(msg.sender);
        address holder = paidBy[claimKey];
        if (holder != address(0)) revert ClaimAlreadyPaid(claimKey, holder);
        paidBy[claimKey] = msg.sender;
        emit ClaimPayoutReserved(claimKey, msg.sender);
    }
}
