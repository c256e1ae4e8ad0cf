// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./IConsortiumRegistry.sol";

/// @title Base for contracts whose state may only be changed by members in good standing.
/// @dev A suspended or expelled member can change no state anywhere; reinstatement restores it.
abstract contract MemberGated {
    /// @notice The caller is not a consortium member.
    error NotMember(address account);
    /// @notice The caller is a member but suspended or expelled.
    error MemberNotInGoodStanding(address account);

    IConsortiumRegistry public immutable registry;

    constructor(IConsortiumRegistry registry_) {
        registry = registry_;
    }

    modifier onlyGoodStanding() {
        _requireGoodStanding(msg.sender);
        _;
    }

    function _requireGoodStanding(address account) internal view {
        if (!registry.isInGoodStanding(account)) {
            if (!registry.isMember(account)) revert NotMember(account);
            revert MemberNotInGoodStanding(account);
        }
    }
}
